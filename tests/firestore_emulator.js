// Starts @firestore-emulator/server on 127.0.0.1 (its own start() binds 0.0.0.0).
// usage: node firestore_emulator.js PORT    -- prints "ready <port>" once listening.
"use strict";
const grpc = require("@grpc/grpc-js");
const { FirestoreServer } = require("@firestore-emulator/server");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node firestore_emulator.js PORT");
  process.exit(2);
}
const emulator = new FirestoreServer();
emulator.server.bindAsync(
  `127.0.0.1:${port}`,
  grpc.ServerCredentials.createInsecure(),
  (err, bound) => {
    if (err) {
      console.error(`bind failed: ${err.message}`);
      process.exit(1);
    }
    console.log(`ready ${bound}`);
  },
);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    emulator.stop();
    process.exit(0);
  });
}
