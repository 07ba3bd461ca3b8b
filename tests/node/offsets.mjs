// A JavaScript client of gist, as a web or Node.js developer writes one: it slices texts
// with String.prototype.slice on each span's utf16_start/utf16_end and must get exactly
// the entity's (and key point's) text, over gRPC (@grpc/grpc-js + @grpc/proto-loader) and
// over gRPC-Web (@improbable-eng/grpc-web with its Node transport) on the same port.
//
// Usage: node tests/node/offsets.mjs HOST:PORT   (from the repository root; run by
// tests/it/http_tools.rs). Prints one JSON line of counts; exits non-zero on a mismatch.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import grpcJs from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import improbable from "@improbable-eng/grpc-web";
import nodeTransport from "@improbable-eng/grpc-web-node-http-transport";
import protobuf from "protobufjs";

const { grpc: grpcWeb } = improbable;
const { NodeHttpTransport } = nodeTransport;

const address = process.argv[2];
assert.ok(address, "usage: node tests/node/offsets.mjs HOST:PORT");
const PROTO = "proto/gist/v1/gist.proto";

const texts = {
  "khan-li": readFileSync("tests/data/khan-li-call.txt", "utf8"),
  emoji:
    "🚀 He met Imran Khan in 👩‍🚀 Islamabad and “Li Keqiang” in 北京 🇵🇰. " +
    "Then Xi Jinping 𝐀 arrived from 𠮷野家 Gwadar with 🦠 COVID-19 vaccines.",
};

/** Checks every span of `spans` against `text` with JavaScript's own slicing. */
function checkSpans(text, spans, what) {
  for (const span of spans) {
    assert.equal(
      text.slice(span.utf16_start, span.utf16_end),
      span.text,
      `${what}: utf16 ${span.utf16_start}-${span.utf16_end} should slice ${JSON.stringify(span.text)}`,
    );
  }
  return spans.length;
}

// gRPC with @grpc/grpc-js, the messages read from the proto at run time.
const definition = protoLoader.loadSync(PROTO, {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const gist = grpcJs.loadPackageDefinition(definition).gist.v1;
const credentials = grpcJs.credentials.createInsecure();
const extractor = new gist.EntityExtractor(address, credentials);
const summarizer = new gist.Summarizer(address, credentials);
const call = (client, method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, (err, response) => (err ? reject(err) : resolve(response))),
  );

const report = { grpc: { entities: 0, key_points: 0, code_point_slices_wrong: 0 }, grpc_web: { entities: 0 } };
for (const [name, text] of Object.entries(texts)) {
  const entities = await call(extractor, "ExtractEntities", { id: name, text });
  assert.equal(entities.id, name);
  assert.ok(entities.entities.length > 0, `${name}: no entities`);
  report.grpc.entities += checkSpans(text, entities.entities, `${name} entities (gRPC)`);
  // Code-point offsets are not JavaScript string indices once an astral character came
  // before: slicing with them is the bug UTF-16 offsets exist to avoid.
  report.grpc.code_point_slices_wrong += entities.entities.filter(
    (e) => text.slice(e.start, e.end) !== e.text,
  ).length;
  const summary = await call(summarizer, "Summarize", {
    text,
    mode: "SUMMARY_MODE_EXTRACTIVE",
    max_key_points: 3,
  });
  assert.ok(summary.key_points.length > 0, `${name}: no key points`);
  report.grpc.key_points += checkSpans(text, summary.key_points, `${name} key points (gRPC)`);
}
assert.ok(report.grpc.code_point_slices_wrong > 0, "the emoji text should trip code-point slicing");
extractor.close();
summarizer.close();

// gRPC-Web with @improbable-eng/grpc-web over Node's http module. Its method descriptors
// normally come from protoc's JavaScript output; protobufjs encodes the same messages here.
const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
const Request = root.lookupType("gist.v1.ExtractEntitiesRequest");
const Response = root.lookupType("gist.v1.ExtractEntitiesResponse");
const ExtractEntities = {
  methodName: "ExtractEntities",
  service: { serviceName: "gist.v1.EntityExtractor" },
  requestStream: false,
  responseStream: false,
  requestType: Request,
  responseType: {
    deserializeBinary: (bytes) => {
      const message = Response.decode(bytes);
      return { toObject: () => Response.toObject(message, { defaults: true, longs: Number }) };
    },
  },
};
for (const [name, text] of Object.entries(texts)) {
  const request = {
    serializeBinary: () => Request.encode(Request.create({ id: name, text })).finish(),
    toObject: () => ({ id: name, text }),
  };
  const answer = await new Promise((resolve) =>
    grpcWeb.unary(ExtractEntities, {
      request,
      host: `http://${address}`,
      transport: NodeHttpTransport(),
      onEnd: resolve,
    }),
  );
  assert.equal(answer.status, grpcWeb.Code.OK, `gRPC-Web: ${answer.status} ${answer.statusMessage}`);
  assert.equal(answer.headers.get("content-type")[0], "application/grpc-web+proto");
  const entities = answer.message.toObject();
  assert.equal(entities.id, name);
  report.grpc_web.entities += checkSpans(text, entities.entities, `${name} entities (gRPC-Web)`);
}
assert.equal(report.grpc_web.entities, report.grpc.entities, "gRPC-Web and gRPC disagree");
console.log(JSON.stringify(report));
