const http = require('node:http')

const port = Number(process.env.PORT || 3000)
http
  .createServer((req, res) => {
    const body = JSON.stringify({ message: 'hello from node', path: req.url })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  .listen(port, '0.0.0.0')
