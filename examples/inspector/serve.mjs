// Serves the inspector on 127.0.0.1 (`make inspector`, or `node examples/inspector/serve.mjs [PORT]`).
// Only the page, the package's browser build and SCHEMA.md are served; nothing else of the repository.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const SERVED = ["examples/inspector/", "npm/mcpvault/dist/", "SCHEMA.md"];
const TYPES = { ".html": "text/html; charset=utf-8", ".mjs": "text/javascript", ".js": "text/javascript",
  ".css": "text/css", ".wasm": "application/wasm", ".json": "application/json", ".md": "text/plain; charset=utf-8" };

export function startServer(port = 0, host = "127.0.0.1") {
  const server = createServer(async (req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, "http://x").pathname).replace(/^\/+/, "");
    } catch {
      // a malformed escape (`GET /%`) is the request's fault: it threw in this async handler and ended the process
      res.writeHead(400, { "content-type": "text/plain" });
      return res.end("bad request\n");
    }
    if (path === "") {
      res.writeHead(302, { location: "/examples/inspector/" });
      return res.end();
    }
    const rel = path.endsWith("/") ? `${path}index.html` : path;
    const file = normalize(join(root, rel));
    const allowed = req.method === "GET" && file.startsWith(root) && SERVED.some((p) => rel.startsWith(p)) && !rel.split("/").includes("..");
    try {
      if (!allowed) throw new Error("not served");
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store",
        "x-content-type-options": "nosniff", "referrer-policy": "no-referrer" });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(port, host, () => resolve({ server, origin: `http://${host}:${server.address().port}`, url: `http://${host}:${server.address().port}/` }));
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url } = await startServer(Number(process.argv[2] ?? process.env.PORT ?? 8787));
  console.log(`mcpvault inspector: ${url}examples/inspector/  (Ctrl-C to stop; add #token=… to open a token)`);
}
