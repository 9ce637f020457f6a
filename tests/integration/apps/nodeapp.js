#!/usr/bin/env node
// A Node app for the supervised-app tests (test_apps.py), started by Gatehouse: listens on
// GATEHOUSE_SOCKET or 127.0.0.1:$PORT, refuses requests without the pairing token
// (X-Gatehouse-App-Token == GATEHOUSE_APP_TOKEN) with 403, and answers /pid with its pid, its
// descriptors and the variables Gatehouse set.
'use strict';
const http = require('http');
const fs = require('fs');
const crypto = require('crypto');

const token = process.env.GATEHOUSE_APP_TOKEN || '';
const version = process.env.APP_VERSION || 'node-v1';

function fds() {
  const out = {};
  for (const name of fs.readdirSync('/proc/self/fd')) {
    try { out[name] = fs.readlinkSync('/proc/self/fd/' + name); } catch (e) { /* gone */ }
  }
  return out;
}

const server = http.createServer((req, res) => {
  const seen = req.headers['x-gatehouse-app-token'];
  if (seen !== token) {
    res.writeHead(403, {'Content-Type': 'text/plain'});
    res.end('bad token\n');
    return;
  }
  if (req.url === '/pid') {
    res.writeHead(200, {'Content-Type': 'application/json'});
    res.end(JSON.stringify({
      pid: process.pid, ppid: process.ppid, version, token_seen: seen, runtime: 'node',
      env: {PORT: process.env.PORT || null, ASPNETCORE_URLS: process.env.ASPNETCORE_URLS || null,
            GATEHOUSE_SOCKET: process.env.GATEHOUSE_SOCKET || null},
    }));
    return;
  }
  res.writeHead(200, {'Content-Type': 'text/plain', 'X-App-Version': version});
  res.end(`hello from node ${version} pid ${process.pid}\n`);
});

// An upgrade to "websocket" answers 101 and then echoes every byte back (no framing: the
// tests check that the tunnel carries bytes, and for how long the process lives with it open).
server.on('upgrade', (req, socket) => {
  if (req.headers['x-gatehouse-app-token'] !== token) {
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1')
    .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
               `Sec-WebSocket-Accept: ${accept}\r\nX-App-Pid: ${process.pid}\r\n\r\n`);
  socket.on('data', (d) => socket.write(d));
  socket.on('end', () => socket.end());
  socket.on('error', () => socket.destroy());
});

const sock = process.env.GATEHOUSE_SOCKET;
const listening = () => console.log(`nodeapp ${version} listening on ${sock || '127.0.0.1:' + process.env.PORT}`);
if (sock) server.listen(sock, listening);
else server.listen(Number(process.env.PORT), '127.0.0.1', listening);
process.on('SIGTERM', () => { console.log('nodeapp: SIGTERM, closing'); process.exit(0); });
