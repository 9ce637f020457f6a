/* The socket helpers moved to core/sock.h (the worker's accept path uses them, below net).
 * This forwarding header stays only for h2_server.c, being split in parallel; it goes once
 * that file includes core/sock.h. */
#ifndef GH_NET_SOCK_H
#define GH_NET_SOCK_H

#include "core/sock.h"

#endif
