/* Socket helpers shared by listeners, client connections and upstream connections. */
#ifndef GH_CORE_SOCK_H
#define GH_CORE_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

/* "1.2.3.4:80" or "[::1]:80" into out (at least 64 bytes). */
void sock_addr_text(const struct sockaddr *sa, char *out, size_t cap);
/* Numeric host only ("1.2.3.4" / "::1"). */
void sock_host_text(const struct sockaddr *sa, char *out, size_t cap);

/* Listening socket with SO_REUSEPORT; returns fd or -1 (errno set). */
int sock_listen(const struct sockaddr *sa, socklen_t len, int backlog);
/* Start a non-blocking connect; returns fd (connect may be in progress) or -1 (errno set). */
int sock_connect(const struct sockaddr *sa, socklen_t len);
/* Read and drop what the socket holds (up to 256 KiB per call). Returns 1 when the peer closed or
 * the socket failed (close it now), 0 when it is drained for the moment. Used to linger before a
 * close, so that unread input does not turn the close into a reset that destroys our last bytes. */
int sock_discard(int fd);
/* Switch off Nagle's algorithm on a connected TCP socket (best effort). Our writers gather
 * what they have into one write (outq), so Nagle would only delay: a response whose head and
 * body leave in two writes (as when the upstream sends them apart) would have its second
 * write held until the peer's delayed ACK, about 40 ms on Linux. */
void sock_nodelay(int fd);
/* Pending error of a socket after a non-blocking connect (0 = connected). */
int sock_error(int fd);

#endif
