package hotfn;

import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The Java shim's tests, plain JDK (no JUnit offline): codec against the shared vectors in
 * docs/protocol-vectors.json, then the runtime in child JVMs (hot loop and cold mode).
 *
 * <p>Usage: {@code java -cp build/hotfn-runtime.jar:build/test-classes hotfn.TestMain
 * [VECTORS_JSON] [name-filter]}
 */
public final class TestMain {
    private static final HexFormat HEX = HexFormat.of();
    private static final List<Process> children = new ArrayList<>();
    private static Path vectorsPath = Path.of("../../docs/protocol-vectors.json");
    private static Map<String, Object> vectors;

    interface Body {
        void run() throws Exception;
    }

    private static final Map<String, Body> TESTS = new LinkedHashMap<>();

    static void test(String name, Body body) {
        TESTS.put(name, body);
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0) vectorsPath = Path.of(args[0]);
        vectors = asMap(Json.parse(Files.readString(vectorsPath)));
        register();
        System.exit(runAll(args.length > 1 ? args[1] : ""));
    }

    /** Runs the registered tests whose name contains {@code filter}; 0 if all passed. */
    static int runAll(String filter) throws Exception {
        ExecutorService pool = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        int passed = 0;
        List<String> failed = new ArrayList<>();
        for (Map.Entry<String, Body> t : TESTS.entrySet()) {
            if (!t.getKey().contains(filter)) continue;
            long start = System.nanoTime();
            Future<?> f = pool.submit(() -> {
                t.getValue().run();
                return null;
            });
            String outcome;
            try {
                f.get(120, TimeUnit.SECONDS);
                outcome = null;
            } catch (TimeoutException e) {
                f.cancel(true);
                outcome = "timed out";
            } catch (java.util.concurrent.ExecutionException e) {
                Throwable c = e.getCause();
                outcome = c instanceof AssertionError ? c.getMessage() : Runtime.trace(c);
            } finally {
                synchronized (children) {
                    for (Process p : children) p.destroyForcibly();
                    children.clear();
                }
            }
            long ms = (System.nanoTime() - start) / 1_000_000;
            if (outcome == null) {
                passed++;
                System.out.printf("PASS %-60s %5d ms%n", t.getKey(), ms);
            } else {
                failed.add(t.getKey());
                System.out.printf("FAIL %-60s %5d ms%n     %s%n", t.getKey(), ms, outcome.replace("\n", "\n     "));
            }
        }
        System.out.printf("%n%d passed, %d failed%s%n", passed, failed.size(),
                failed.isEmpty() ? "" : ": " + failed);
        return failed.isEmpty() ? 0 : 1;
    }

    // ================================================================ assertions

    static void check(boolean ok, String message) {
        if (!ok) throw new AssertionError(message);
    }

    static void eq(Object expected, Object actual, String what) {
        if (!deepEquals(expected, actual)) {
            throw new AssertionError(what + ": expected " + show(expected) + " but got " + show(actual));
        }
    }

    static boolean deepEquals(Object a, Object b) {
        if (a instanceof byte[] && b instanceof byte[]) return Arrays.equals((byte[]) a, (byte[]) b);
        if (a instanceof List && b instanceof List) {
            List<?> x = (List<?>) a, y = (List<?>) b;
            if (x.size() != y.size()) return false;
            for (int i = 0; i < x.size(); i++) if (!deepEquals(x.get(i), y.get(i))) return false;
            return true;
        }
        if (a instanceof Map && b instanceof Map) {
            Map<?, ?> x = (Map<?, ?>) a, y = (Map<?, ?>) b;
            if (!x.keySet().equals(y.keySet())) return false;
            for (Object k : x.keySet()) if (!deepEquals(x.get(k), y.get(k))) return false;
            return true;
        }
        if (a instanceof Map.Entry && b instanceof Map.Entry) {
            return deepEquals(((Map.Entry<?, ?>) a).getKey(), ((Map.Entry<?, ?>) b).getKey())
                    && deepEquals(((Map.Entry<?, ?>) a).getValue(), ((Map.Entry<?, ?>) b).getValue());
        }
        return a == null ? b == null : a.equals(b);
    }

    static String show(Object o) {
        if (o instanceof byte[]) {
            byte[] b = (byte[]) o;
            return b.length > 64 ? "<" + b.length + " bytes>" : "bin:" + HEX.formatHex(b);
        }
        if (o instanceof List) {
            List<String> parts = new ArrayList<>();
            for (Object x : (List<?>) o) parts.add(show(x));
            return parts.toString();
        }
        if (o instanceof Map) {
            List<String> parts = new ArrayList<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) parts.add(e.getKey() + "=" + show(e.getValue()));
            return "{" + String.join(", ", parts) + "}";
        }
        return String.valueOf(o);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> asMap(Object o) {
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    static List<Object> asList(Object o) {
        return (List<Object>) o;
    }

    /** A vector's JSON frame with {"$bin": hex} turned into byte[]. */
    static Object fromJson(Object o) {
        if (o instanceof Map) {
            Map<String, Object> m = asMap(o);
            if (m.size() == 1 && m.containsKey("$bin")) return HEX.parseHex((String) m.get("$bin"));
            Map<String, Object> out = new LinkedHashMap<>();
            for (Map.Entry<String, Object> e : m.entrySet()) out.put(e.getKey(), fromJson(e.getValue()));
            return out;
        }
        if (o instanceof List) {
            List<Object> out = new ArrayList<>();
            for (Object x : asList(o)) out.add(fromJson(x));
            return out;
        }
        return o;
    }

    static final Map<String, Set<String>> KNOWN_KEYS = Map.of(
            "ready", Set.of("type", "version", "runtime"),
            "request", Set.of("type", "call_id", "method", "url", "path", "query", "headers", "body",
                    "deadline", "app", "route", "params"),
            "response", Set.of("type", "call_id", "status", "headers", "body"),
            "error", Set.of("type", "call_id", "error_type", "message", "trace"));

    /** The frame as a decoder that ignores unknown keys must see it. */
    static Map<String, Object> knownKeys(Map<String, Object> frame) {
        Set<String> known = KNOWN_KEYS.get((String) frame.get("type"));
        Map<String, Object> out = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : frame.entrySet()) if (known.contains(e.getKey())) out.put(e.getKey(), e.getValue());
        return out;
    }

    /** An InputStream over bytes that counts how many of them a reader consumed. */
    static final class CountingStream extends InputStream {
        final byte[] data;
        int pos;

        CountingStream(byte[] data) {
            this.data = data;
        }

        @Override
        public int read() {
            return pos < data.length ? data[pos++] & 0xff : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (len == 0) return 0;
            if (pos >= data.length) return -1;
            int n = Math.min(len, data.length - pos);
            System.arraycopy(data, pos, b, off, n);
            pos += n;
            return n;
        }
    }

    static ProtocolException.Kind rejection(byte[] bytes, int max, int[] consumed) {
        CountingStream in = new CountingStream(bytes);
        Frames.Reader reader = new Frames.Reader(in, max);
        try {
            while (reader.next() != null) {
                // keep reading until the bad frame
            }
            return null;
        } catch (ProtocolException e) {
            consumed[0] = in.pos;
            return e.kind;
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    // ================================================================ tests

    static void register() {
        int max = ((Long) vectors.get("max_frame_size")).intValue();

        // ------------------------------------------------------------ stdin under gVisor
        test("stdin: frames read in pieces without ever asking available() (gVisor's FIFOs)", () -> {
            check(new Runtime.NoAvailableInput(java.io.FileDescriptor.in).available() == 0,
                    "stdin must claim nothing is waiting");
            Map<String, Object> v = asMap(asList(vectors.get("valid")).get(0));
            byte[] bytes = HEX.parseHex((String) v.get("bytes"));
            // A source that hands out 3 bytes per read and fails available(), as a host FIFO
            // does under gVisor: BufferedInputStream must not need it.
            InputStream trickle = new InputStream() {
                int at = 0;

                @Override
                public int read() {
                    return at < bytes.length ? bytes[at++] & 0xff : -1;
                }

                @Override
                public int read(byte[] b, int off, int len) {
                    if (at >= bytes.length) return -1;
                    int n = Math.min(Math.min(len, 3), bytes.length - at);
                    System.arraycopy(bytes, at, b, off, n);
                    at += n;
                    return n;
                }

                @Override
                public int available() throws IOException {
                    throw new IOException("Illegal seek");
                }
            };
            InputStream stdin = new java.io.BufferedInputStream(new java.io.FilterInputStream(trickle) {
                @Override
                public int available() {
                    return 0;
                }
            }, 1 << 16);
            Frames.Reader reader = new Frames.Reader(stdin, max);
            eq(knownKeys(asMap(fromJson(v.get("frame")))), reader.next(), "frame read in pieces");
            check(reader.next() == null, "clean EOF after the frame");
        });

        // ------------------------------------------------------------ codec vs shared vectors
        test("vectors: every valid frame decodes to its frame", () -> {
            List<Object> valid = asList(vectors.get("valid"));
            check(valid.size() >= 5, "too few valid vectors");
            for (Object o : valid) {
                Map<String, Object> v = asMap(o);
                byte[] bytes = HEX.parseHex((String) v.get("bytes"));
                Frames.Reader reader = new Frames.Reader(new ByteArrayInputStream(bytes), max);
                Map<String, Object> decoded = reader.next();
                Map<String, Object> expected = knownKeys(asMap(fromJson(v.get("frame"))));
                eq(expected, decoded, "vector " + v.get("name"));
                check(reader.next() == null, "vector " + v.get("name") + ": clean EOF expected after the frame");
                if ("request".equals(decoded.get("type"))) {
                    Request r = Request.fromFrame(decoded); // the handler's view of it
                    eq(expected.get("call_id"), r.callId(), "callId");
                    eq(expected.get("deadline"), r.deadline(), "deadline");
                    eq(expected.get("body"), r.body(), "body");
                    eq(((List<?>) expected.get("headers")).size(), r.headers().size(), "header count");
                    eq(expected.get("params"), new LinkedHashMap<>(r.params()), "params");
                }
            }
        });

        test("vectors: every invalid frame is rejected, as its kind says", () -> {
            for (Object o : asList(vectors.get("invalid"))) {
                Map<String, Object> v = asMap(o);
                byte[] bytes = HEX.parseHex((String) v.get("bytes"));
                int[] consumed = {-1};
                ProtocolException.Kind kind = rejection(bytes, max, consumed);
                String name = (String) v.get("name");
                String want = ((String) v.get("error")).toUpperCase();
                check(kind != null, "vector " + name + " was accepted");
                eq(want, kind.name(), "vector " + name + " rejected as");
                if (kind == ProtocolException.Kind.OVERSIZED) {
                    eq(4, consumed[0], "vector " + name + ": bytes read before refusing (only the prefix)");
                }
            }
        });

        test("vectors: encoder output decodes back to the same frame", () -> {
            for (Object o : asList(vectors.get("valid"))) {
                Map<String, Object> v = asMap(o);
                Map<String, Object> frame = knownKeys(asMap(fromJson(v.get("frame"))));
                Frames.Writer w = new Frames.Writer(max);
                switch ((String) frame.get("type")) {
                    case "ready":
                        w.ready((String) frame.get("runtime"));
                        break;
                    case "response": {
                        List<Map.Entry<String, String>> headers = new ArrayList<>();
                        for (Object p : asList(frame.get("headers"))) {
                            headers.add(Map.entry((String) asList(p).get(0), (String) asList(p).get(1)));
                        }
                        w.response((String) frame.get("call_id"), ((Long) frame.get("status")).intValue(),
                                headers, (byte[]) frame.get("body"));
                        break;
                    }
                    case "error":
                        w.error((String) frame.get("call_id"), (String) frame.get("error_type"),
                                (String) frame.get("message"), (String) frame.get("trace"));
                        break;
                    default: // request: the shim never sends one; the generic encoder must still round-trip
                        w.map(frame);
                }
                byte[] bytes = w.toByteArray();
                Map<String, Object> back = new Frames.Reader(new ByteArrayInputStream(bytes), max).next();
                eq(frame, back, "round trip of " + v.get("name"));
                if (!"request".equals(frame.get("type"))) {
                    // Our encoding is the canonical (smallest) one, as Python's msgpack writes it.
                    eq(v.get("bytes"), HEX.formatHex(bytes), "bytes of " + v.get("name"));
                }
            }
        });

        // ------------------------------------------------------------ codec details
        test("msgpack: every int width decodes, encodes minimally, round-trips", () -> {
            long[] values = {0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295L, 4294967296L, Long.MAX_VALUE,
                -1, -32, -33, -128, -129, -32768, -32769, Integer.MIN_VALUE, Integer.MIN_VALUE - 1L, Long.MIN_VALUE};
            int[] sizes = {1, 1, 1, 2, 2, 3, 3, 5, 5, 9, 9, 1, 1, 2, 2, 3, 3, 5, 5, 9, 9};
            for (int i = 0; i < values.length; i++) {
                byte[] b = Msgpack.encode(values[i]);
                eq(sizes[i], b.length, "encoded size of " + values[i]);
                eq(values[i], Msgpack.decode(b, 0, b.length), "round trip of " + values[i]);
            }
            // Non-minimal encodings are valid too.
            eq(5L, Msgpack.decode(HEX.parseHex("d30000000000000005"), 0, 9), "int64 5");
            eq(5L, Msgpack.decode(HEX.parseHex("cf0000000000000005"), 0, 9), "uint64 5");
            eq(-1L, Msgpack.decode(HEX.parseHex("d0ff"), 0, 2), "int8 -1");
            eq(new BigInteger("18446744073709551615"), Msgpack.decode(HEX.parseHex("cfffffffffffffffff"), 0, 9), "uint64 max");
        });

        test("msgpack: str/bin/array/map of every width, floats, nil, bool", () -> {
            for (int n : new int[] {0, 31, 32, 255, 256, 65535, 65536, 100_000}) {
                String s = "x".repeat(n);
                byte[] enc = Msgpack.encode(s);
                eq(s, Msgpack.decode(enc, 0, enc.length), "str of " + n);
                byte[] bin = new byte[n];
                Arrays.fill(bin, (byte) 0xab);
                enc = Msgpack.encode(bin);
                eq(bin, Msgpack.decode(enc, 0, enc.length), "bin of " + n);
            }
            for (int n : new int[] {0, 15, 16, 65535, 65536}) {
                List<Object> list = new ArrayList<>();
                Map<String, Object> map = new LinkedHashMap<>();
                for (int i = 0; i < n; i++) {
                    list.add((long) i);
                    map.put("k" + i, (long) i);
                }
                byte[] enc = Msgpack.encode(list);
                eq(list, Msgpack.decode(enc, 0, enc.length), "array of " + n);
                enc = Msgpack.encode(map);
                eq(map, Msgpack.decode(enc, 0, enc.length), "map of " + n);
            }
            String unicode = "Zo\u00eb \u2013 \u6771\u4eac \ud83d\ude00".repeat(2); // 38 bytes: str8
            byte[] enc = Msgpack.encode(unicode);
            eq(unicode, Msgpack.decode(enc, 0, enc.length), "non-ASCII str");
            eq(unicode.getBytes(StandardCharsets.UTF_8).length + 2, enc.length, "str8 header + UTF-8 bytes");
            eq(1.5, Msgpack.decode(HEX.parseHex("cb3ff8000000000000"), 0, 9), "float64");
            eq(1.5, Msgpack.decode(HEX.parseHex("ca3fc00000"), 0, 5), "float32");
            eq(null, Msgpack.decode(HEX.parseHex("c0"), 0, 1), "nil");
            eq(true, Msgpack.decode(HEX.parseHex("c3"), 0, 1), "true");
            eq(false, Msgpack.decode(HEX.parseHex("c2"), 0, 1), "false");
        });

        test("msgpack: malformed data is refused without over-allocating", () -> {
            String[] bad = {
                "c1",                 // never-used type byte
                "dbffffffff41",       // str32 longer than the data
                "c6ffffffff00",       // bin32 longer than the data
                "ddffffffff",         // array32 of 4 billion elements in 5 bytes
                "dfffffffff",         // map32 likewise
                "81a17801",           // map with trailing nothing missing? (complete) + see below
                "a2c328",             // invalid UTF-8
                "a3eda080",           // UTF-16 surrogate encoded in UTF-8
                "a2c0af",             // overlong '/'
                "81c403616263a0",     // bin key
                "d40100",             // fixext1
                "c70100",             // ext8
            };
            for (String hex : bad) {
                byte[] b = HEX.parseHex(hex);
                if (hex.equals("81a17801")) b = HEX.parseHex("81a1780100"); // trailing byte
                try {
                    Object v = Msgpack.decode(b, 0, b.length);
                    throw new AssertionError("accepted " + hex + " as " + show(v));
                } catch (ProtocolException e) {
                    eq(ProtocolException.Kind.MALFORMED, e.kind, "kind for " + hex);
                }
            }
            byte[] deep = new byte[100_000];
            Arrays.fill(deep, (byte) 0x91); // [[[[...
            try {
                Msgpack.decode(deep, 0, deep.length);
                throw new AssertionError("accepted 100000 nested arrays");
            } catch (ProtocolException e) {
                check(e.getMessage().contains("deep") || e.getMessage().contains("ends"), e.getMessage());
            }
        });

        test("frames: request without params map / wrong pair types / big deadline refused", () -> {
            Map<String, Object> good = requestFrame("c", new byte[0]);
            Map<String, Object> f = new LinkedHashMap<>(good);
            f.put("params", List.of());
            expectMalformed(f, "params as array");
            f = new LinkedHashMap<>(good);
            f.put("params", Map.of("id", 7L));
            expectMalformed(f, "params value int");
            f = new LinkedHashMap<>(good);
            f.put("query", List.of(List.of("a")));
            expectMalformed(f, "query pair of one");
            f = new LinkedHashMap<>(good);
            f.put("deadline", true);
            expectMalformed(f, "deadline bool");
            f = new LinkedHashMap<>(good);
            f.put("deadline", new BigInteger("18446744073709551615"));
            expectMalformed(f, "deadline past long");
            f = new LinkedHashMap<>(good);
            f.put("type", 1L);
            expectMalformed(f, "type int");
        });

        test("frames: oversized response is refused by the encoder, error frame shortened", () -> {
            Frames.Writer w = new Frames.Writer(1000);
            try {
                w.response("c", 200, List.of(), new byte[1001]);
                throw new AssertionError("1001-byte body fit a 1000-byte frame");
            } catch (ProtocolException e) {
                eq(ProtocolException.Kind.OVERSIZED, e.kind, "kind");
            }
            try {
                w.response("c", 200, List.of(), new byte[990]);
                throw new AssertionError("990-byte body + keys fit a 1000-byte frame");
            } catch (ProtocolException e) {
                eq(ProtocolException.Kind.OVERSIZED, e.kind, "kind");
            }
            w.error("c", "E", "m".repeat(5000), "t".repeat(5000));
            check(w.length() - 4 <= 1000, "error frame over the limit: " + w.length());
            Map<String, Object> back = Frames.decodePayload(w.bytes(), 4, w.length() - 4);
            check(((String) back.get("message")).startsWith("mmm"), "message kept in part");
        });

        test("cold: request from the environment (path, query, headers, params)", () -> {
            Map<String, String> env = new LinkedHashMap<>();
            env.put("METHOD", "PUT");
            env.put("REQUEST_URL", "http://localhost:8080/r/demo/users/7?tag=a&tag=b&q=a%20b+c&e=&flag&x=%E2%82%AC#frag");
            env.put("APP_NAME", "demo");
            env.put("ROUTE", "/users/:id");
            env.put("CALL_ID", "call-9");
            env.put("DEADLINE", "1764284400000");
            env.put("HEADER_CONTENT_TYPE", "text/plain");
            env.put("HEADER_X_ECHO_A", "1, 2");
            env.put("PARAM_ID", "7");
            env.put("HOTFN_FORMAT", "default");
            Request r = Runtime.coldRequest(env, "hi".getBytes(StandardCharsets.UTF_8));
            eq("PUT", r.method(), "method");
            eq("/users/7", r.path(), "path");
            eq(List.of(Map.entry("tag", "a"), Map.entry("tag", "b"), Map.entry("q", "a b c"),
                    Map.entry("e", ""), Map.entry("flag", ""), Map.entry("x", "\u20ac")), r.query(), "query");
            eq(List.of(Map.entry("content-type", "text/plain"), Map.entry("x-echo-a", "1, 2")), r.headers(), "headers");
            eq("text/plain", r.header("Content-Type"), "header()");
            eq(Map.of("id", "7"), r.params(), "params");
            eq("call-9", r.callId(), "call id");
            eq(1764284400000L, r.deadline(), "deadline");
            eq("demo", r.app(), "app");
            eq("/users/:id", r.route(), "route");
            eq("hi", r.bodyText(), "body");
            eq("/", Runtime.appPath(Runtime.urlPath("http://h/r/demo"), "demo"), "app root");
            eq("/r/demox/a", Runtime.appPath(Runtime.urlPath("http://h/r/demox/a?x"), "demo"), "other app");
            eq("/a/b", Runtime.urlPath("/a/b?c"), "path-only URL");
            eq("", Runtime.urlPath("http://h"), "no path");
            eq(List.of(Map.entry("a", "100%"), Map.entry("b", "%zz")), Runtime.parseQuery("a=100%&b=%zz"), "stray %");
        });

        test("in-process: answer() turns returns and throws into frames", () -> {
            Frames.Writer w = new Frames.Writer(max);
            Request req = Request.builder().callId("c1").header("X-Test", "text").build();
            Runtime.answer(new TestHandler(), req, w);
            Map<String, Object> f = Frames.decodePayload(w.bytes(), 4, w.length() - 4);
            eq("response", f.get("type"), "type");
            eq(List.of(List.of("content-type", "text/plain; charset=utf-8")), f.get("headers"), "default content type");
            eq("h\u00e9llo".getBytes(StandardCharsets.UTF_8), f.get("body"), "UTF-8 body");
            Runtime.answer(r -> Response.ok("x").contentType("text/html"), req, w);
            f = Frames.decodePayload(w.bytes(), 4, w.length() - 4);
            eq(List.of(List.of("content-type", "text/html")), f.get("headers"), "explicit content type kept");
            Runtime.answer(r -> { throw new java.io.IOException(); }, req, w);
            f = Frames.decodePayload(w.bytes(), 4, w.length() - 4);
            eq("error", f.get("type"), "type");
            eq("java.io.IOException", f.get("error_type"), "error_type");
            eq("", f.get("message"), "null message -> empty");
        });

        // ------------------------------------------------------------ the runtime in a child JVM
        test("hot: ready frame first, after construction; output before it goes to stderr", () -> {
            try (Child c = Child.hot()) {
                Map<String, Object> ready = c.read();
                eq("ready", ready.get("type"), "first frame");
                eq(1L, ready.get("version"), "version");
                String runtime = (String) ready.get("runtime");
                check(runtime.matches("java/\\d[^ ]* hotfn-java/0\\.1"), "runtime " + runtime);
                c.closeStdin();
                eq(0, c.waitFor(), "exit status after EOF");
                check(c.stderr().contains("TestHandler constructed"), "constructor output not on stderr: " + c.stderr());
            }
        });

        test("hot: echo every byte value 0-255, call id and method", () -> {
            try (Child c = Child.hot()) {
                c.read();
                byte[] all = new byte[256];
                for (int i = 0; i < 256; i++) all[i] = (byte) i;
                Map<String, Object> f = c.call(requestFrame("call-bytes", all));
                eq("response", f.get("type"), "type");
                eq("call-bytes", f.get("call_id"), "call_id");
                eq(200L, f.get("status"), "status");
                eq(all, f.get("body"), "body");
                eq(List.of(List.of("x-method", "POST"), List.of("x-call-id", "call-bytes")), f.get("headers"), "headers");
            }
        });

        test("hot: 5 MiB body both ways", () -> {
            try (Child c = Child.hot()) {
                c.read();
                byte[] big = new byte[5 * 1024 * 1024];
                new java.util.Random(1).nextBytes(big);
                for (int i = 0; i < 3; i++) {
                    Map<String, Object> f = c.call(requestFrame("big-" + i, big));
                    eq("big-" + i, f.get("call_id"), "call_id");
                    check(Arrays.equals(big, (byte[]) f.get("body")), "5 MiB body changed");
                }
            }
        });

        test("hot: repeated and non-ASCII headers keep order and values", () -> {
            try (Child c = Child.hot()) {
                c.read();
                Map<String, Object> req = requestFrame("call-h", new byte[0]);
                List<Object> headers = List.of(List.of("x-echo-a", "1"), List.of("x-echo-b", "zwei"),
                        List.of("x-echo-a", "2"), List.of("x-echo-name", "Zo\u00eb \u2013 \u6771\u4eac \ud83d\ude00"),
                        List.of("accept", "*/*"));
                req.put("headers", headers);
                Map<String, Object> f = c.call(req);
                eq(List.of(List.of("x-method", "POST"), List.of("x-call-id", "call-h"), List.of("x-echo-a", "1"),
                        List.of("x-echo-b", "zwei"), List.of("x-echo-a", "2"),
                        List.of("x-echo-name", "Zo\u00eb \u2013 \u6771\u4eac \ud83d\ude00")), f.get("headers"), "headers");
            }
        });

        test("hot: status and headers from the handler; request fields reach it", () -> {
            try (Child c = Child.hot()) {
                c.read();
                Map<String, Object> req = requestFrame("call-s", new byte[0]);
                req.put("headers", List.of(List.of("x-test", "status"), List.of("x-status", "418")));
                Map<String, Object> f = c.call(req);
                eq(418L, f.get("status"), "status");
                eq(List.of(List.of("x-custom", "yes"), List.of("set-cookie", "a=1"), List.of("set-cookie", "b=2"),
                        List.of("x-name", "Zo\u00eb \u2013 \u6771\u4eac"),
                        List.of("content-type", "text/plain; charset=utf-8")), f.get("headers"), "headers");
                eq("status".getBytes(StandardCharsets.UTF_8), f.get("body"), "body");

                req = requestFrame("call-i", "payload".getBytes(StandardCharsets.UTF_8));
                req.put("headers", List.of(List.of("x-test", "info"), List.of("content-type", "a/b")));
                req.put("query", List.of(List.of("tag", "a"), List.of("tag", "b")));
                req.put("params", new LinkedHashMap<>(Map.of("id", "7")));
                req.put("deadline", 1764284400000L);
                String info = new String((byte[]) c.call(req).get("body"), StandardCharsets.UTF_8);
                for (String want : new String[] {"method=POST", "url=http://localhost:8080/r/demo/users/7?tag=a&tag=b",
                        "path=/users/7", "query=[tag=a, tag=b]", "params={id=7}", "call_id=call-i",
                        "deadline=1764284400000", "app=demo", "route=/users/:id", "body=payload",
                        "header(Content-Type)=a/b"}) {
                    check(info.contains(want + "\n"), "info lacks " + want + ":\n" + info);
                }
            }
        });

        test("hot: exception -> error frame, and the loop goes on", () -> {
            try (Child c = Child.hot()) {
                c.read();
                Map<String, Object> req = requestFrame("call-x", new byte[0]);
                req.put("headers", List.of(List.of("x-test", "throw")));
                Map<String, Object> f = c.call(req);
                eq("error", f.get("type"), "type");
                eq("call-x", f.get("call_id"), "call_id");
                eq("java.lang.IllegalStateException", f.get("error_type"), "error_type");
                eq("boom", f.get("message"), "message");
                check(((String) f.get("trace")).contains("at hotfn.TestHandler.handle"), "trace: " + f.get("trace"));
                for (String t : new String[] {"badstatus", "null"}) {
                    req = requestFrame("call-" + t, new byte[0]);
                    req.put("headers", List.of(List.of("x-test", t)));
                    f = c.call(req);
                    if (t.equals("badstatus")) {
                        eq("error", f.get("type"), "status 42 -> error");
                        check(((String) f.get("message")).contains("42"), "message " + f.get("message"));
                    } else {
                        eq("response", f.get("type"), "null -> empty 200");
                        eq(200L, f.get("status"), "status");
                        eq(new byte[0], f.get("body"), "body");
                    }
                }
                f = c.call(requestFrame("call-after", "still here".getBytes(StandardCharsets.UTF_8)));
                eq("response", f.get("type"), "type after errors");
                eq("still here".getBytes(StandardCharsets.UTF_8), f.get("body"), "body after errors");
            }
        });

        test("hot: System.out.println goes to stderr, frames stay intact", () -> {
            try (Child c = Child.hot()) {
                c.read();
                for (int i = 0; i < 3; i++) {
                    Map<String, Object> req = requestFrame("call-p" + i, "abc".getBytes(StandardCharsets.UTF_8));
                    req.put("headers", List.of(List.of("x-test", "print")));
                    Map<String, Object> f = c.call(req);
                    eq("response", f.get("type"), "type");
                    eq("abc".getBytes(StandardCharsets.UTF_8), f.get("body"), "body");
                }
                c.closeStdin();
                eq(0, c.waitFor(), "exit status");
                String err = c.stderr();
                check(err.contains("noise from System.out") && err.contains("log line") && err.contains("no newline"),
                        "prints not on stderr: " + err);
            }
        });

        test("hot: oversized response -> error frame, loop goes on", () -> {
            try (Child c = Child.hot("HOTFN_MAX_FRAME_SIZE", "100000")) {
                c.read();
                Map<String, Object> req = requestFrame("call-big", new byte[0]);
                req.put("headers", List.of(List.of("x-test", "big"), List.of("x-size", "200000")));
                Map<String, Object> f = c.call(req);
                eq("error", f.get("type"), "type");
                check(((String) f.get("message")).contains("100000"), "message: " + f.get("message"));
                f = c.call(requestFrame("call-ok", new byte[10]));
                eq("response", f.get("type"), "then a normal call");
            }
        });

        test("hot: oversized frame refused after its 4-byte prefix, exit non-zero", () -> {
            try (Child c = Child.hot("HOTFN_MAX_FRAME_SIZE", "1000")) {
                c.read();
                c.stdin.write(new byte[] {0, 0, 0x03, (byte) 0xe9}); // 1001, no payload follows
                c.stdin.flush();
                int status = c.waitFor(); // must not wait for the 1001 bytes
                check(status != 0, "exit status " + status);
                check(c.stderr().contains("1001") && c.stderr().contains("1000"), "stderr: " + c.stderr());
            }
            try (Child c = Child.hot()) {
                c.read();
                c.stdin.write(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff});
                c.stdin.flush();
                check(c.waitFor() != 0, "max uint32 accepted");
            }
        });

        test("hot: malformed and truncated frames end the process non-zero", () -> {
            for (String hex : new String[] {"00000000", "0000000493010203", "0000000c81a474797065a568656c6c6f"}) {
                try (Child c = Child.hot()) {
                    c.read();
                    c.stdin.write(HEX.parseHex(hex));
                    c.stdin.flush();
                    check(c.waitFor() != 0, hex + " accepted");
                    check(c.stderr().contains("protocol error"), "stderr: " + c.stderr());
                }
            }
            try (Child c = Child.hot()) { // a valid frame of another type
                c.read();
                c.send(Map.of("type", "ready", "version", 1L, "runtime", "x"));
                check(c.waitFor() != 0, "ready frame from hotfn accepted");
            }
            try (Child c = Child.hot()) {
                c.read();
                c.stdin.write(HEX.parseHex("0000001f83a474797065"));
                c.closeStdin();
                check(c.waitFor() != 0, "truncated frame accepted");
            }
        });

        test("hot: EOF between frames -> exit 0 at once, even with a user thread", () -> {
            try (Child c = Child.hot()) {
                c.read();
                Map<String, Object> req = requestFrame("call-t", new byte[0]);
                req.put("headers", List.of(List.of("x-test", "thread")));
                eq("response", c.call(req).get("type"), "type");
                long start = System.nanoTime();
                c.closeStdin();
                eq(0, c.waitFor(), "exit status");
                check(System.nanoTime() - start < 5_000_000_000L, "slow exit");
            }
        });

        test("hot: handler that cannot load -> exit 1 before any frame", () -> {
            for (String[] h : new String[][] {{"NoSuchClass", "not found"}, {"hotfn.ThrowingConstructor", "no database"},
                                               {"hotfn.Json", "does not implement hotfn.Handler"}}) {
                try (Child c = new Child(Map.of("HOTFN_FORMAT", "hot", "HOTFN_HANDLER", h[0]))) {
                    eq(1, c.waitFor(), "exit status for " + h[0]);
                    eq(-1, c.stdout.read(), "stdout of " + h[0] + " must be empty");
                    check(c.stderr().contains(h[1]), "stderr for " + h[0] + ": " + c.stderr());
                }
            }
        });

        test("hot: exit from the handler ends the process with its status", () -> {
            try (Child c = Child.hot()) {
                c.read();
                Map<String, Object> req = requestFrame("call-e", new byte[0]);
                req.put("headers", List.of(List.of("x-test", "exit")));
                c.send(req);
                eq(3, c.waitFor(), "exit status");
            }
        });

        test("concurrency: 16 calls in flight answered in about one wait, by call id, in any order", () -> {
            try (Child c = Child.hot("HOTFN_CONCURRENCY", "16")) {
                eq(16L, c.read().get("concurrency"), "ready frame's concurrency");
                double[] elapsed = new double[2];
                for (int round = 0; round < 2; round++) { // the first round also starts the threads
                    long start = System.nanoTime();
                    for (int i = 0; i < 16; i++) {
                        Map<String, Object> req = requestFrame("call-" + i, ("body " + i).getBytes(StandardCharsets.UTF_8));
                        // call-0 waits longest in round 0: it must come back after those sent after it.
                        String wait = round == 0 && i == 0 ? "600" : "50";
                        req.put("headers", List.of(List.of("x-test", "sleep"), List.of("x-sleep-ms", wait)));
                        c.send(req);
                    }
                    java.util.Set<Object> seen = new java.util.HashSet<>();
                    List<Object> order = new ArrayList<>();
                    for (int i = 0; i < 16; i++) {
                        Map<String, Object> f = c.read();
                        String id = (String) f.get("call_id");
                        eq("response", f.get("type"), "type of " + id);
                        eq("body " + id.substring(5), new String((byte[]) f.get("body"), StandardCharsets.UTF_8), "body of " + id);
                        check(seen.add(id), "answered twice: " + id);
                        order.add(id);
                    }
                    elapsed[round] = (System.nanoTime() - start) / 1e6;
                    if (round == 0) eq("call-0", order.get(15), "the slow call answered last; order " + order);
                }
                System.out.printf("     16 calls of 50 ms at concurrency 16: %.1f ms (one at a time: >= 800 ms)%n", elapsed[1]);
                check(elapsed[1] < 400, "16 calls of 50 ms took " + elapsed[1] + " ms");
                c.closeStdin();
                eq(0, c.waitFor(), "exit status after EOF");
            }
        });

        test("warm-up: before the ready frame, the handler's own (WarmUp) too; a failure only noted", () -> {
            try (Child c = Child.hot()) {
                eq("ready", c.read().get("type"), "first frame");
                check(c.stderr().contains("TestHandler warm-up with warm-up"), c.stderr());
            }
            try (Child c = Child.hot("TEST_WARMUP", "throw")) {
                c.read();
                eq("call-w", c.call(requestFrame("call-w", new byte[0])).get("call_id"), "call after a failed warm-up");
                check(c.stderr().contains("warm-up failed (calls go on)") && c.stderr().contains("warm-up boom"), c.stderr());
            }
            try (Child c = Child.hot("HOTFN_WARMUP", "off")) {
                c.read();
                check(!c.stderr().contains("TestHandler warm-up"), c.stderr());
            }
        });

        test("concurrency: EOF with calls in flight answers them all, then exits 0", () -> {
            try (Child c = Child.hot("HOTFN_CONCURRENCY", "4")) {
                c.read();
                for (int i = 0; i < 4; i++) {
                    Map<String, Object> req = requestFrame("call-" + i, new byte[0]);
                    req.put("headers", List.of(List.of("x-test", "sleep"), List.of("x-sleep-ms", "50")));
                    c.send(req);
                }
                c.closeStdin();
                java.util.Set<Object> ids = new java.util.HashSet<>();
                for (int i = 0; i < 4; i++) ids.add(c.read().get("call_id"));
                eq(4, ids.size(), "answers");
                eq(0, c.waitFor(), "exit status");
            }
        });

        test("concurrency: a crash mid-flight ends the process; what came out is whole frames", () -> {
            try (Child c = Child.hot("HOTFN_CONCURRENCY", "16")) {
                c.read();
                for (int i = 0; i < 16; i++) {
                    Map<String, Object> req = requestFrame("call-" + i, new byte[100_000]);
                    req.put("headers", i == 15 ? List.of(List.of("x-test", "exit"))
                            : List.of(List.of("x-test", "sleep"), List.of("x-sleep-ms", String.valueOf(i % 3))));
                    c.send(req);
                }
                int answered = 0;
                Map<String, Object> f;
                while ((f = c.reader.next()) != null) { // a torn frame would throw here
                    eq("response", f.get("type"), "type");
                    eq(100_000, ((byte[]) f.get("body")).length, "body length");
                    answered++;
                }
                check(answered < 16, "answers: " + answered);
                eq(3, c.waitFor(), "exit status");
            }
        });

        test("concurrency: HOTFN_CONCURRENCY not a positive int -> one at a time, said on stderr", () -> {
            try (Child c = Child.hot("HOTFN_CONCURRENCY", "lots")) {
                check(!c.read().containsKey("concurrency"), "ready frame announces no concurrency");
                eq("call-1", c.call(requestFrame("call-1", new byte[0])).get("call_id"), "call id");
                c.closeStdin();
                eq(0, c.waitFor(), "exit status");
                check(c.stderr().contains("HOTFN_CONCURRENCY=lots"), c.stderr());
            }
        });

        test("hot: 2000 echo round trips over pipes (median, p99)", () -> {
            try (Child c = Child.hot()) {
                c.read();
                byte[] body = "hello".getBytes(StandardCharsets.UTF_8);
                long[] t = new long[2000];
                for (int i = 0; i < t.length; i++) {
                    Map<String, Object> req = requestFrame("call-" + i, body);
                    long start = System.nanoTime();
                    Map<String, Object> f = c.call(req);
                    t[i] = System.nanoTime() - start;
                    if (!"response".equals(f.get("type"))) throw new AssertionError("call " + i + ": " + show(f));
                }
                long[] last = Arrays.copyOfRange(t, 1000, 2000); // after JIT warm-up
                Arrays.sort(last);
                double median = last[500] / 1e6, p99 = last[990] / 1e6;
                System.out.printf("     echo round trip after warm-up: median %.3f ms, p99 %.3f ms%n", median, p99);
                check(median < 1.0, "median round trip " + median + " ms");
            }
        });

        test("training run (hotfn.Training, for CDS archives) exits 0", () -> {
            String java = ProcessHandle.current().info().command().orElse("java");
            ProcessBuilder pb = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "hotfn.Training");
            pb.environment().put("HOTFN_HANDLER", "hotfn.TestHandler");
            pb.redirectErrorStream(true);
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            check(p.waitFor(30, TimeUnit.SECONDS), "training still running");
            eq(0, p.exitValue(), "exit status; output:\n" + out);
            check(out.contains("training run done (hot loop 0, cold call 0)"), out);
        });

        test("hot: a handler reading System.in gets EOF, frames untouched", () -> {
            try (Child c = Child.hot("HOTFN_HANDLER", "hotfn.StdinReader")) {
                c.read();
                for (int i = 0; i < 2; i++) {
                    Map<String, Object> f = c.call(requestFrame("call-in" + i, new byte[] {1, 2, 3}));
                    eq("-1".getBytes(StandardCharsets.UTF_8), f.get("body"), "System.in.read()");
                }
            }
        });

        test("cold: env + stdin in, body on stdout, exit 0", () -> {
            Map<String, String> env = new LinkedHashMap<>();
            env.put("HOTFN_FORMAT", "default");
            env.put("METHOD", "POST");
            env.put("REQUEST_URL", "http://localhost:8080/r/demo/users/7?tag=a&tag=b");
            env.put("APP_NAME", "demo");
            env.put("ROUTE", "/users/:id");
            env.put("CALL_ID", "cold-1");
            env.put("DEADLINE", "1764284400000");
            env.put("HEADER_X_TEST", "info");
            env.put("HEADER_CONTENT_TYPE", "a/b");
            env.put("PARAM_ID", "7");
            try (Child c = new Child(env)) {
                c.stdin.write("payload".getBytes(StandardCharsets.UTF_8));
                c.closeStdin();
                String out = new String(c.stdout.readAllBytes(), StandardCharsets.UTF_8);
                eq(0, c.waitFor(), "exit status");
                for (String want : new String[] {"method=POST", "path=/users/7", "query=[tag=a, tag=b]",
                        "headers=[content-type=a/b, x-test=info]", "params={id=7}", "call_id=cold-1",
                        "deadline=1764284400000", "app=demo", "route=/users/:id", "body=payload"}) {
                    check(out.contains(want + "\n"), "cold info lacks " + want + ":\n" + out);
                }
            }
            env.put("HEADER_X_TEST", "print");
            try (Child c = new Child(env)) {
                byte[] all = new byte[256];
                for (int i = 0; i < 256; i++) all[i] = (byte) i;
                c.stdin.write(all);
                c.closeStdin();
                eq(all, c.stdout.readAllBytes(), "cold echo of every byte, prints kept off stdout");
                eq(0, c.waitFor(), "exit status");
                check(c.stderr().contains("noise from System.out"), "stderr: " + c.stderr());
            }
            env.put("HEADER_X_TEST", "throw");
            try (Child c = new Child(env)) {
                c.closeStdin();
                eq(1, c.waitFor(), "exit status after a throw");
                eq(-1, c.stdout.read(), "no stdout after a throw");
                check(c.stderr().contains("boom"), "stderr: " + c.stderr());
            }
        });
    }

    static void expectMalformed(Map<String, Object> frame, String what) throws Exception {
        Frames.Writer w = new Frames.Writer(Integer.MAX_VALUE - 8);
        w.map(frame);
        try {
            Frames.decodePayload(w.bytes(), 4, w.length() - 4);
            throw new AssertionError(what + " accepted");
        } catch (ProtocolException e) {
            eq(ProtocolException.Kind.MALFORMED, e.kind, what);
        }
    }

    static Map<String, Object> requestFrame(String callId, byte[] body) {
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("type", "request");
        f.put("call_id", callId);
        f.put("method", "POST");
        f.put("url", "http://localhost:8080/r/demo/users/7?tag=a&tag=b");
        f.put("path", "/users/7");
        f.put("query", List.of());
        f.put("headers", List.of());
        f.put("body", body);
        f.put("deadline", System.currentTimeMillis() + 30_000);
        f.put("app", "demo");
        f.put("route", "/users/:id");
        f.put("params", Map.of());
        return f;
    }

    /** hotfn.Runtime in a child JVM, with pipes for stdin and stdout and a file for stderr. */
    static final class Child implements AutoCloseable {
        final Process process;
        final OutputStream stdin;
        final InputStream stdout;
        final File errFile;
        final Frames.Reader reader;

        static Child hot(String... extraEnv) throws IOException {
            Map<String, String> env = new LinkedHashMap<>();
            env.put("HOTFN_FORMAT", "hot");
            env.put("HOTFN_HANDLER", "hotfn.TestHandler");
            for (int i = 0; i < extraEnv.length; i += 2) env.put(extraEnv[i], extraEnv[i + 1]);
            return new Child(env);
        }

        Child(Map<String, String> env) throws IOException {
            String java = ProcessHandle.current().info().command().orElse("java");
            ProcessBuilder pb = new ProcessBuilder(java, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                    "-XX:-UsePerfData", "-cp", System.getProperty("java.class.path"), "hotfn.Runtime");
            pb.environment().keySet().removeIf(k -> k.startsWith("HOTFN_") || k.startsWith("HEADER_") || k.startsWith("PARAM_"));
            pb.environment().putIfAbsent("HOTFN_HANDLER", "hotfn.TestHandler");
            pb.environment().putAll(env);
            errFile = File.createTempFile("hotfn-java-test", ".stderr");
            errFile.deleteOnExit();
            pb.redirectError(errFile);
            process = pb.start();
            synchronized (children) {
                children.add(process);
            }
            stdin = process.getOutputStream();
            stdout = process.getInputStream();
            reader = new Frames.Reader(stdout, Integer.MAX_VALUE - 8);
        }

        Map<String, Object> read() throws Exception {
            Map<String, Object> f = reader.next();
            if (f == null) throw new AssertionError("stdout closed; stderr:\n" + stderr());
            return f;
        }

        void send(Map<String, Object> frame) throws Exception {
            Frames.Writer w = new Frames.Writer(Integer.MAX_VALUE - 8);
            w.map(frame);
            w.writeTo(stdin);
        }

        Map<String, Object> call(Map<String, Object> frame) throws Exception {
            send(frame);
            return read();
        }

        void closeStdin() throws IOException {
            stdin.close();
        }

        int waitFor() throws Exception {
            if (!process.waitFor(30, TimeUnit.SECONDS)) throw new AssertionError("child still running; stderr:\n" + stderr());
            return process.exitValue();
        }

        String stderr() {
            try {
                return Files.readString(errFile.toPath());
            } catch (IOException e) {
                return "<" + e + ">";
            }
        }

        @Override
        public void close() {
            process.destroyForcibly();
            errFile.delete();
        }
    }
}
