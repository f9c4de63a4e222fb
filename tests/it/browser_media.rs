//! Browser tests of the media path (headless Chromium as publisher and viewer).
