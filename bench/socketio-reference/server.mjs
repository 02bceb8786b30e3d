#!/usr/bin/env node
// The guide's Socket.IO signaling server (shared/seed/webrtc-guide.md, "Socket.io + WebRTC"), without Next.js: a plain
// node:http server and `new Server(httpServer)` with socket.io's default options. The join-room, offer, answer,
// ice-candidate and disconnect handlers are the guide's; the others are the events the guide's clients emit without
// the guide showing their server side (../shared/docs/protocols.md, "The guide's events").
//
//   node bench/socketio-reference/server.mjs [PORT]     (or PORT=… in the environment; 0 picks a free port)
//
// Prints "listening <port>" once it accepts connections, on 127.0.0.1 (HOST=… to change). GET /healthz answers 200,
// so the tests' health checks and browser pages can use the same origin as with kaiwa.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const host = process.env.HOST || '127.0.0.1';

const httpServer = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

const io = new Server(httpServer);

const rooms = new Map();

io.on('connection', (socket) => {
  // The guide's handlers.
  socket.on('join-room', (roomId) => {
    socket.join(roomId);

    if (!rooms.has(roomId)) {
      rooms.set(roomId, new Set());
    }
    rooms.get(roomId).add(socket.id);

    socket.to(roomId).emit('user-joined', socket.id);
  });

  socket.on('offer', (data) => {
    socket.to(data.to).emit('offer', {
      from: socket.id,
      offer: data.offer,
    });
  });

  socket.on('answer', (data) => {
    socket.to(data.to).emit('answer', {
      from: socket.id,
      answer: data.answer,
    });
  });

  socket.on('ice-candidate', (data) => {
    socket.to(data.to).emit('ice-candidate', {
      from: socket.id,
      candidate: data.candidate,
    });
  });

  socket.on('disconnect', () => {
    rooms.forEach((users, roomId) => {
      if (users.has(socket.id)) {
        users.delete(socket.id);
        socket.to(roomId).emit('user-left', socket.id);
      }
    });
  });

  // What the guide's other clients expect.
  for (const event of ['toggle-audio', 'toggle-video']) {
    socket.on(event, (data) => {
      socket.to(data.roomId).emit(event, { ...data, from: socket.id });
    });
  }

  socket.on('leave-room', (roomId) => {
    socket.leave(roomId);
    const users = rooms.get(roomId);
    if (users?.delete(socket.id)) {
      socket.to(roomId).emit('user-left', socket.id);
    }
  });

  // The 1:1 examples name no peer: the other party is `to` when given, else the other members of the sender's rooms,
  // else everyone else connected.
  const otherParty = (data) => {
    if (data && typeof data.to === 'string') return socket.to(data.to);
    const joined = [...socket.rooms].filter((r) => r !== socket.id);
    return joined.length ? socket.to(joined) : socket.broadcast;
  };
  for (const [event, relayed] of [['call-user', 'call-made'], ['answer-call', 'call-answered'], ['signal', 'signal']]) {
    socket.on(event, (data) => {
      otherParty(data).emit(relayed, { ...data, from: socket.id });
    });
  }
});

httpServer.listen(port, host, () => {
  console.log(`listening ${httpServer.address().port}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    io.close();
    httpServer.closeAllConnections?.();
    process.exit(0);
  });
}
