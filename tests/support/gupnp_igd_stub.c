/*
 * A stand-in for libgupnp-igd-1.0.so.4, loaded only by the GStreamer WHIP
 * interop test through LD_LIBRARY_PATH.
 *
 * Why: Debian's `whip-client` links libsoup-2.4, while libnice links
 * gupnp-igd (UPnP port mapping), which links libsoup-3.0; GLib aborts a
 * process that loads both. libnice only uses gupnp-igd when
 * gupnp_simple_igd_thread_new() returns an object, so returning NULL turns
 * UPnP off (which a test on one machine never needs) and keeps libsoup-3
 * out of the process.
 */
#include <stddef.h>

typedef unsigned long GType;

void *gupnp_simple_igd_thread_new(void) { return NULL; }
GType gupnp_simple_igd_get_type(void) { return 0; }
void gupnp_simple_igd_add_port(void *igd, const char *protocol, unsigned int external_port,
                               const char *local_ip, unsigned int local_port,
                               unsigned int lease_duration, const char *description) {
  (void)igd; (void)protocol; (void)external_port; (void)local_ip; (void)local_port;
  (void)lease_duration; (void)description;
}
void gupnp_simple_igd_remove_port_local(void *igd, const char *protocol, const char *local_ip,
                                        unsigned int local_port) {
  (void)igd; (void)protocol; (void)local_ip; (void)local_port;
}
