package hotfn;

import java.io.BufferedInputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;

/**
 * The process around a {@link Handler}: {@code java hotfn.Runtime}.
 *
 * <ol>
 *   <li>Keeps the real stdout for hotfn and points {@code System.out} at stderr.</li>
 *   <li>Loads and constructs the handler class named by {@code HOTFN_HANDLER} (default
 *       {@code Func}); failure: a message on stderr and exit status 1.</li>
 *   <li>{@code HOTFN_FORMAT=hot}: sends the ready frame, then answers request frames until
 *       EOF on stdin (exit 0). Otherwise one cold call: request from the environment, body
 *       from stdin, response body to stdout.</li>
 * </ol>
 */
public final class Runtime {
    private Runtime() {}

    public static final String SHIM_VERSION = "0.1";

    /** Exit status after a protocol error (malformed, oversized or truncated frame from hotfn). */
    static final int EXIT_PROTOCOL = 2;

    public static void main(String[] args) {
        OutputStream stdout = new FileOutputStream(FileDescriptor.out);
        InputStream stdin = new BufferedInputStream(new NoAvailableInput(FileDescriptor.in), 1 << 16);
        System.out.flush();
        System.setOut(System.err); // user output is log, never protocol
        System.setIn(InputStream.nullInputStream()); // stdin is ours too: a read must not eat frames

        Handler handler;
        String name = env("HOTFN_HANDLER", "Func");
        try {
            handler = load(name);
        } catch (Throwable t) {
            System.err.println("hotfn-java: cannot load handler " + name + ": " + describe(t));
            Throwable cause = t instanceof LoadError ? t.getCause() : t;
            if (cause != null) cause.printStackTrace(System.err);
            System.err.flush();
            System.exit(1);
            return;
        }
        int status;
        if ("hot".equals(System.getenv("HOTFN_FORMAT"))) {
            int max = Frames.maxFrameSize(System.getenv("HOTFN_MAX_FRAME_SIZE"));
            int concurrency = concurrency(System.getenv("HOTFN_CONCURRENCY"));
            if (!"off".equals(System.getenv("HOTFN_WARMUP"))) warmUp(handler, max); // off: to measure what it gains
            status = serveHot(handler, stdin, stdout, max, concurrency);
        } else {
            status = serveCold(handler, System.getenv(), stdin, stdout);
        }
        System.err.flush();
        // System.exit rather than returning: threads a handler started must not keep us alive.
        System.exit(status);
    }

    static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    /** What the ready frame announces, e.g. {@code java/17.0.19 hotfn-java/0.1}. */
    static String runtimeName() {
        String extra = System.getProperty("hotfn.runtime.extra"); // e.g. "clojure/1.11.1"
        return "java/" + System.getProperty("java.version")
                + (extra == null || extra.isEmpty() ? "" : " " + extra)
                + " hotfn-java/" + SHIM_VERSION;
    }

    // ---------------------------------------------------------------- loading

    static final class LoadError extends Exception {
        private static final long serialVersionUID = 1L;

        LoadError(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Loads, initialises and constructs the handler class: all its start-up cost is paid here. */
    static Handler load(String className) throws LoadError {
        Class<?> cls;
        try {
            cls = Class.forName(className, true, ClassLoader.getSystemClassLoader());
        } catch (ClassNotFoundException e) {
            throw new LoadError("class " + className + " not found on the classpath ("
                    + System.getProperty("java.class.path") + ")", null);
        } catch (ExceptionInInitializerError e) {
            throw new LoadError("static initialiser of " + className + " failed: " + describe(e.getCause()), e.getCause());
        } catch (LinkageError e) {
            throw new LoadError("class " + className + " cannot be linked: " + describe(e), e);
        }
        if (!Handler.class.isAssignableFrom(cls)) {
            throw new LoadError("class " + className + " does not implement hotfn.Handler", null);
        }
        Constructor<?> ctor;
        try {
            ctor = cls.getDeclaredConstructor();
            ctor.setAccessible(true);
        } catch (NoSuchMethodException e) {
            throw new LoadError("class " + className + " has no constructor without arguments", null);
        } catch (RuntimeException e) {
            throw new LoadError("constructor of " + className + " is not accessible: " + describe(e), e);
        }
        try {
            return (Handler) ctor.newInstance();
        } catch (InvocationTargetException e) {
            throw new LoadError("constructor of " + className + " threw " + describe(e.getCause()), e.getCause());
        } catch (ReflectiveOperationException | RuntimeException | ExceptionInInitializerError e) {
            Throwable cause = e instanceof ExceptionInInitializerError ? e.getCause() : e;
            throw new LoadError("cannot construct " + className + ": " + describe(cause), cause);
        }
    }

    /**
     * stdin that never claims bytes are waiting. BufferedInputStream asks available() whether to
     * read on; on a pipe the JDK answers with FIONREAD, which gVisor does not support for a host
     * FIFO (hot containers' stdin), and then fails with "Illegal seek". Saying 0 only makes
     * readNBytes loop on read(), which blocks until data comes, as it should.
     */
    static final class NoAvailableInput extends FileInputStream {
        NoAvailableInput(FileDescriptor fd) {
            super(fd);
        }

        @Override
        public int available() {
            return 0;
        }
    }

    static String describe(Throwable t) {
        if (t == null) return "unknown error";
        if (t instanceof LoadError) return t.getMessage();
        String m = t.getMessage();
        return t.getClass().getName() + (m == null ? "" : ": " + m);
    }

    // ---------------------------------------------------------------- hot

    /**
     * The frame loop: ready, then request -> response (or error) until EOF. Returns the exit
     * status: 0 after EOF between frames, {@link #EXIT_PROTOCOL} after a protocol error, 1 if
     * stdout is gone.
     */
    static int serveHot(Handler handler, InputStream in, OutputStream out, int maxFrameSize) {
        return serveHot(handler, in, out, maxFrameSize, 1);
    }

    /**
     * How many calls the container takes at once: {@code HOTFN_CONCURRENCY}, a positive int;
     * 1 when unset. Anything else is a mistake of the function's configuration: said on stderr,
     * and 1 is used, so an old server (which sends one call at a time anyway) still works.
     */
    static int concurrency(String value) {
        if (value == null || value.isBlank()) return 1;
        try {
            int n = Integer.parseInt(value.trim());
            if (n >= 1 && n <= MAX_CONCURRENCY) return n;
        } catch (NumberFormatException ignored) {
            // reported below
        }
        System.err.println("hotfn-java: HOTFN_CONCURRENCY=" + value + " is not an int from 1 to "
                + MAX_CONCURRENCY + "; serving one call at a time");
        return 1;
    }

    /** One thread per call in flight: more than this is a misconfiguration, not a workload. */
    static final int MAX_CONCURRENCY = 1024;

    /**
     * Runs the shim's own per-call code once before the ready frame, so its classes are loaded
     * and its first-use costs paid then, not by the first real call: a request frame encoded,
     * read back, turned into a Request, a Response built and checked, response and error frames
     * encoded, all into memory. The handler is never called: it may have side effects; one that
     * implements {@link WarmUp} warms its own paths itself, with the sample request.
     */
    static void warmUp(Handler handler, int maxFrameSize) {
        Request sample = warmUp(maxFrameSize);
        if (sample != null && handler instanceof WarmUp) {
            try {
                ((WarmUp) handler).warmUp(sample);
            } catch (Exception | LinkageError e) {
                System.err.println("hotfn-java: the handler's warm-up failed (calls go on): " + describe(e));
            }
        }
    }

    /** The shim's part of the warm-up; the sample request, or null if it failed. */
    static Request warmUp(int maxFrameSize) {
        try {
            Frames.Writer writer = new Frames.Writer(maxFrameSize);
            Map<String, Object> f = new java.util.LinkedHashMap<>();
            f.put("type", "request");
            f.put("call_id", "warm-up");
            f.put("method", "POST");
            f.put("url", "http://localhost/r/warm/up?a=1");
            f.put("path", "/up");
            f.put("query", List.of(List.of("a", "1")));
            f.put("headers", List.of(List.of("content-type", "text/plain")));
            f.put("body", new byte[] {'w'});
            f.put("deadline", System.currentTimeMillis());
            f.put("app", "warm");
            f.put("route", "/up");
            f.put("params", Map.of("a", "1"));
            writer.map(f);
            Frames.Reader reader = new Frames.Reader(
                    new java.io.ByteArrayInputStream(writer.toByteArray()), maxFrameSize);
            Request request = Request.fromFrame(reader.next());
            Response response = Response.ok(request.body()).header("content-type", request.header("Content-Type"));
            response.check();
            writer.response(request.callId(), response.status(), response.wireHeaders(), response.body());
            writer.writeTo(OutputStream.nullOutputStream());
            writer.error(request.callId(), "java.lang.Exception", "warm-up", trace(new Exception("warm-up")));
            return request;
        } catch (Exception | LinkageError e) {
            // Only a head start: the real calls still work (or fail) on their own.
            System.err.println("hotfn-java: warm-up failed (calls go on): " + describe(e));
            return null;
        }
    }

    /**
     * The frame loop: ready, then request -> response (or error) until EOF, with up to
     * {@code concurrency} calls in flight (answered as each ends, in any order).
     */
    static int serveHot(Handler handler, InputStream in, OutputStream out, int maxFrameSize, int concurrency) {
        Frames.Reader reader = new Frames.Reader(in, maxFrameSize);
        Frames.Writer writer = new Frames.Writer(maxFrameSize);
        try {
            writer.ready(runtimeName(), concurrency);
            writer.writeTo(out);
        } catch (ProtocolException | IOException e) {
            System.err.println("hotfn-java: cannot send the ready frame: " + e.getMessage());
            return 1;
        }
        if (concurrency > 1) return serveConcurrently(handler, reader, out, maxFrameSize, concurrency);
        while (true) {
            Request request;
            try {
                Map<String, Object> frame = reader.next();
                if (frame == null) return 0; // hotfn is done with this container
                if (!"request".equals(frame.get("type"))) {
                    throw ProtocolException.malformed("expected a request frame, got '" + frame.get("type") + "'");
                }
                request = Request.fromFrame(frame);
            } catch (ProtocolException e) {
                System.err.println("hotfn-java: protocol error, exiting: " + e.getMessage());
                return EXIT_PROTOCOL;
            } catch (IOException e) {
                System.err.println("hotfn-java: cannot read stdin, exiting: " + e);
                return 1;
            }
            answer(handler, request, writer);
            System.err.flush(); // the call's log is complete before its answer leaves
            try {
                writer.writeTo(out);
            } catch (IOException e) {
                System.err.println("hotfn-java: cannot write stdout, exiting: " + e);
                return 1;
            }
        }
    }

    /**
     * The loop for {@code concurrency} above 1: this thread reads requests and hands each to a
     * pool of {@code concurrency} threads, waiting for a free one first (hotfn sends no more
     * than that anyway). Each thread encodes its answer in its own writer; the write itself
     * holds {@code out}'s lock, so frames never interleave. After EOF, the calls in flight
     * finish and are answered before the exit status is returned.
     */
    static int serveConcurrently(Handler handler, Frames.Reader reader, OutputStream out,
                                 int maxFrameSize, int concurrency) {
        Semaphore free = new Semaphore(concurrency);
        ThreadLocal<Frames.Writer> writers = ThreadLocal.withInitial(() -> new Frames.Writer(maxFrameSize));
        ExecutorService calls = Executors.newFixedThreadPool(concurrency, task -> {
            Thread t = new Thread(task, "hotfn-call");
            t.setDaemon(true); // System.exit ends the process, whatever a call is doing
            return t;
        });
        while (true) {
            Request request;
            try {
                Map<String, Object> frame = reader.next();
                if (frame == null) break;
                if (!"request".equals(frame.get("type"))) {
                    throw ProtocolException.malformed("expected a request frame, got '" + frame.get("type") + "'");
                }
                request = Request.fromFrame(frame);
                free.acquire();
            } catch (ProtocolException e) {
                System.err.println("hotfn-java: protocol error, exiting: " + e.getMessage());
                return EXIT_PROTOCOL;
            } catch (IOException e) {
                System.err.println("hotfn-java: cannot read stdin, exiting: " + e);
                return 1;
            } catch (InterruptedException e) {
                return 1;
            }
            calls.execute(() -> {
                try {
                    Frames.Writer writer = writers.get();
                    answer(handler, request, writer);
                    System.err.flush();
                    synchronized (out) {
                        writer.writeTo(out);
                    }
                } catch (IOException e) {
                    System.err.println("hotfn-java: cannot write stdout, exiting: " + e);
                    System.exit(1);
                } catch (RuntimeException | Error e) { // the shim's own failure, as in the one-at-a-time loop
                    e.printStackTrace(System.err);
                    System.exit(1);
                } finally {
                    free.release();
                }
            });
        }
        free.acquireUninterruptibly(concurrency); // every call in flight has been answered
        calls.shutdown();
        return 0;
    }

    /** Calls the handler and encodes its response, or an error frame, into {@code writer}. */
    static void answer(Handler handler, Request request, Frames.Writer writer) {
        Throwable failure;
        try {
            Response response = handler.handle(request);
            if (response == null) response = Response.ok();
            response.check();
            writer.response(request.callId(), response.status(), response.wireHeaders(), response.body());
            return;
        } catch (ProtocolException e) {
            failure = new IllegalStateException("response too large: " + e.getMessage()
                    + " (HOTFN_MAX_FRAME_SIZE)");
        } catch (Throwable t) { // a user error never ends the loop
            failure = t;
        }
        try {
            writer.error(request.callId(), failure.getClass().getName(),
                    failure.getMessage() == null ? "" : failure.getMessage(), trace(failure));
        } catch (ProtocolException impossible) {
            throw new IllegalStateException("cannot encode an error frame", impossible);
        }
    }

    static String trace(Throwable t) {
        StringWriter sw = new StringWriter(512);
        try (PrintWriter pw = new PrintWriter(sw)) {
            t.printStackTrace(pw);
        }
        return sw.toString();
    }

    // ---------------------------------------------------------------- cold

    /** One call: request from the environment, body from stdin, response body to stdout. */
    static int serveCold(Handler handler, Map<String, String> env, InputStream in, OutputStream out) {
        byte[] body;
        try {
            body = in.readAllBytes();
        } catch (IOException e) {
            System.err.println("hotfn-java: cannot read stdin: " + e);
            return 1;
        }
        Request request = coldRequest(env, body);
        Response response;
        try {
            response = handler.handle(request);
            if (response == null) response = Response.ok();
            response.check();
        } catch (Throwable t) {
            t.printStackTrace(System.err);
            return 1;
        }
        System.err.flush();
        try {
            out.write(response.body());
            out.flush();
        } catch (IOException e) {
            System.err.println("hotfn-java: cannot write stdout: " + e);
            return 1;
        }
        return 0;
    }

    /** A cold call's request, rebuilt from the IronFunctions-style environment (protocol.md section 3). */
    static Request coldRequest(Map<String, String> env, byte[] body) {
        String url = env.getOrDefault("REQUEST_URL", "");
        String app = env.getOrDefault("APP_NAME", "");
        long deadline = 0;
        try {
            deadline = Long.parseLong(env.getOrDefault("DEADLINE", "0").trim());
        } catch (NumberFormatException ignored) {
            // unknown
        }
        Request.Builder b = Request.builder()
                .method(env.getOrDefault("METHOD", "GET"))
                .url(url)
                .path(appPath(urlPath(url), app))
                .body(body)
                .callId(env.getOrDefault("CALL_ID", ""))
                .deadline(deadline)
                .app(app)
                .route(env.getOrDefault("ROUTE", ""));
        for (Map.Entry<String, String> q : parseQuery(urlQuery(url))) b.query(q.getKey(), q.getValue());
        // The environment has no order: sort for a stable result.
        for (Map.Entry<String, String> e : new TreeMap<>(env).entrySet()) {
            String key = e.getKey();
            if (key.startsWith("HEADER_") && key.length() > 7) {
                b.header(key.substring(7).toLowerCase(Locale.ROOT).replace('_', '-'), e.getValue());
            } else if (key.startsWith("PARAM_") && key.length() > 6) {
                b.param(key.substring(6).toLowerCase(Locale.ROOT), e.getValue());
            }
        }
        return b.build();
    }

    /** The path of an absolute or path-only URL, without query or fragment. */
    static String urlPath(String url) {
        int start = 0;
        int scheme = url.indexOf("://");
        int firstSpecial = indexOfAny(url, "/?#", 0);
        if (scheme >= 0 && (firstSpecial < 0 || scheme < firstSpecial)) {
            start = indexOfAny(url, "/?#", scheme + 3);
            if (start < 0) return "";
        }
        int end = indexOfAny(url, "?#", start);
        return end < 0 ? url.substring(start) : url.substring(start, end);
    }

    static String urlQuery(String url) {
        int q = url.indexOf('?');
        if (q < 0) return "";
        int hash = url.indexOf('#', q);
        return hash < 0 ? url.substring(q + 1) : url.substring(q + 1, hash);
    }

    private static int indexOfAny(String s, String chars, int from) {
        for (int i = from; i < s.length(); i++) {
            if (chars.indexOf(s.charAt(i)) >= 0) return i;
        }
        return -1;
    }

    /** The path within the app: {@code /r/<app>/users/7} -> {@code /users/7}. */
    static String appPath(String path, String app) {
        if (!app.isEmpty()) {
            String prefix = "/r/" + app;
            if (path.equals(prefix)) return "/";
            if (path.startsWith(prefix + "/")) return path.substring(prefix.length());
        }
        return path;
    }

    /** Like Python's parse_qsl(keep_blank_values=True): '&'-separated, '+' is a space, %XX decoded as UTF-8. */
    static List<Map.Entry<String, String>> parseQuery(String query) {
        List<Map.Entry<String, String>> out = new ArrayList<>();
        if (query.isEmpty()) return out;
        for (String part : query.split("&", -1)) {
            if (part.isEmpty()) continue;
            int eq = part.indexOf('=');
            String k = eq < 0 ? part : part.substring(0, eq);
            String v = eq < 0 ? "" : part.substring(eq + 1);
            out.add(Map.entry(percentDecode(k), percentDecode(v)));
        }
        return out;
    }

    static String percentDecode(String s) {
        if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
        byte[] raw = s.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[raw.length];
        int n = 0;
        for (int i = 0; i < raw.length; i++) {
            byte c = raw[i];
            if (c == '+') {
                out[n++] = ' ';
            } else if (c == '%' && i + 2 < raw.length && hex(raw[i + 1]) >= 0 && hex(raw[i + 2]) >= 0) {
                out[n++] = (byte) (hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
                i += 2;
            } else {
                out[n++] = c; // a stray '%' stays, as in Python
            }
        }
        return new String(out, 0, n, StandardCharsets.UTF_8); // invalid UTF-8 -> U+FFFD, as Python's 'replace'
    }

    private static int hex(byte c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
}
