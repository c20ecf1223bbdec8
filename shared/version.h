/* version: the one place parley's version is set.  Both programs print it
 * with --version, next to the protocol versions they speak (PROTO_VERSION
 * of tracker connections, msg.h; LINK_VERSION of chat links, peer/link.h).
 * debian/changelog's newest entry names the same version. */
#ifndef PARLEY_VERSION_H
#define PARLEY_VERSION_H

#define PARLEY_VERSION "0.2.0"

#endif
