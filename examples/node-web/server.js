// Answers every request on $PORT with the dyno that served it and the Node.js that runs it (the slug's).
const http = require('http');
const ms = require('ms');

const port = Number(process.env.PORT || 5000);
const started = Date.now();
http
  .createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`Hello from Slipway: ${process.env.DYNO || 'no dyno'} of ${process.env.SLIPWAY_RELEASE || 'no release'}, node ${process.version} at ${process.execPath}, up ${ms(Date.now() - started)}\n`);
  })
  .listen(port, '0.0.0.0', () => console.log(`listening on ${port}`));
