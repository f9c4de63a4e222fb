// The picture viewers see while the farmer's camera is away (taken by a
// call or another app): a calm card saying so, in both languages, sent in
// place of the camera track. It keeps frames flowing, so players show it
// instead of freezing or reconnecting, and nothing needs the server.

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 5;

/** The card's colours: the pages' earth and millet. */
export const PAUSED_BACKGROUND = '#3a2613';
const MILLET = '#f2c14e';
const TEXT = '#fbedc6';

/**
 * Starts drawing the card; returns `{ track, stop }`. `stop` ends the
 * track and the drawing.
 */
export function pausedPicture() {
  const canvas = document.createElement('canvas');
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  const g = canvas.getContext('2d');
  let beat = 0;
  const draw = () => {
    g.fillStyle = PAUSED_BACKGROUND;
    g.fillRect(0, 0, WIDTH, HEIGHT);
    // A slowly breathing dot: frames change, so every player keeps playing.
    const r = 10 + 4 * Math.sin(beat++ / 3);
    g.fillStyle = MILLET;
    g.beginPath();
    g.arc(WIDTH / 2, 110, r, 0, Math.PI * 2);
    g.fill();
    g.textAlign = 'center';
    g.fillStyle = TEXT;
    g.font = 'bold 34px system-ui, "Noto Sans CJK SC", "PingFang SC", sans-serif';
    g.fillText('农户的相机暂停了，马上回来', WIDTH / 2, 190);
    g.font = '24px system-ui, sans-serif';
    g.fillText('The farmer’s camera paused: back soon', WIDTH / 2, 236);
  };
  draw();
  const timer = setInterval(draw, 1000 / FPS);
  const [track] = canvas.captureStream(FPS).getVideoTracks();
  return {
    track,
    stop() {
      clearInterval(timer);
      track.stop();
    },
  };
}
