package hotfn;

import static hotfn.TestMain.asList;
import static hotfn.TestMain.asMap;
import static hotfn.TestMain.check;
import static hotfn.TestMain.eq;
import static hotfn.TestMain.requestFrame;
import static hotfn.TestMain.test;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Host tests of the Clojure shim (hotfn.clojure.ClojureHandler in the Java runtime), in child
 * JVMs: the conformance function (conformance/func.clj) and tests/clj/testfn.clj. Reuses the Java
 * shim's test harness (hotfn.TestMain).
 */
public final class ClojureTestMain {
    private ClojureTestMain() {}

    static TestMain.Child hot(String ns, String... env) throws Exception {
        String[] all = new String[env.length + 4];
        all[0] = "HOTFN_HANDLER";
        all[1] = "hotfn.clojure.ClojureHandler";
        all[2] = "HOTFN_CLOJURE_HANDLER";
        all[3] = ns;
        System.arraycopy(env, 0, all, 4, env.length);
        return TestMain.Child.hot(all);
    }

    static Map<String, Object> call(TestMain.Child c, String id, byte[] body, List<?> headers) throws Exception {
        Map<String, Object> req = requestFrame(id, body);
        req.put("headers", headers);
        return c.call(req);
    }

    static String text(Object body) {
        return new String((byte[]) body, StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        String filter = args.length > 0 ? args[0] : "";

        test("conformance func.clj: ready, echo, status, raise, print, stderr, info", () -> {
            try (TestMain.Child c = hot("func/handler", "CONFORMANCE_CONFIG", "configured")) {
                Map<String, Object> ready = c.read();
                eq("ready", ready.get("type"), "first frame");
                check(((String) ready.get("runtime")).matches("java/\\S+ clojure/1\\.\\d+\\S* hotfn-java/0\\.1"),
                        "runtime " + ready.get("runtime"));
                byte[] all = new byte[256];
                for (int i = 0; i < 256; i++) all[i] = (byte) i;
                Map<String, Object> f = call(c, "c-echo", all, List.of(List.of("x-echo-a", "1"),
                        List.of("accept", "*/*"), List.of("x-echo-b", "Zo\u00eb"), List.of("x-echo-a", "2")));
                eq("response", f.get("type"), "type");
                eq(200L, f.get("status"), "status");
                eq(all, f.get("body"), "body");
                eq(List.of(List.of("x-method", "POST"), List.of("x-call-id", "c-echo"), List.of("x-echo-a", "1"),
                        List.of("x-echo-b", "Zo\u00eb"), List.of("x-echo-a", "2")), f.get("headers"), "headers");

                f = call(c, "c-status", new byte[0], List.of(List.of("x-hotfn-test", "status"), List.of("x-status", "418")));
                eq(418L, f.get("status"), "status");
                check(asList(f.get("headers")).contains(List.of("x-custom", "yes")), "x-custom: " + f.get("headers"));
                eq("status", text(f.get("body")), "body");

                f = call(c, "c-raise", new byte[0], List.of(List.of("x-hotfn-test", "raise")));
                eq("error", f.get("type"), "type");
                eq("boom", f.get("message"), "message");
                eq("java.lang.RuntimeException", f.get("error_type"), "error_type");

                f = call(c, "c-print", "p".getBytes(StandardCharsets.UTF_8), List.of(List.of("x-hotfn-test", "print")));
                eq("p", text(f.get("body")), "print then echo");
                f = call(c, "c-stderr", "s".getBytes(StandardCharsets.UTF_8), List.of(List.of("x-hotfn-test", "stderr")));
                eq("s", text(f.get("body")), "stderr then echo");
                long t0 = System.nanoTime();
                f = call(c, "c-sleep", new byte[0], List.of(List.of("x-hotfn-test", "sleep"), List.of("x-sleep-ms", "200")));
                check(System.nanoTime() - t0 >= 200_000_000L, "sleep too short");
                eq("response", f.get("type"), "sleep then echo");

                Map<String, Object> req = requestFrame("c-info", "abc".getBytes(StandardCharsets.UTF_8));
                req.put("headers", List.of(List.of("x-hotfn-test", "info"), List.of("x-q", "\"quoted\" \\ \u6771")));
                req.put("query", List.of(List.of("tag", "a"), List.of("tag", "b")));
                req.put("params", Map.of("id", "7"));
                req.put("deadline", 1764284400000L);
                f = c.call(req);
                eq(List.of(List.of("content-type", "application/json")), f.get("headers"), "info headers");
                Map<String, Object> info = asMap(Json.parse(text(f.get("body"))));
                Map<String, Object> want = new LinkedHashMap<>();
                want.put("method", "POST");
                want.put("url", "http://localhost:8080/r/demo/users/7?tag=a&tag=b");
                want.put("path", "/users/7");
                want.put("query", List.of(List.of("tag", "a"), List.of("tag", "b")));
                want.put("headers", List.of(List.of("x-hotfn-test", "info"), List.of("x-q", "\"quoted\" \\ \u6771")));
                want.put("app", "demo");
                want.put("route", "/users/:id");
                want.put("params", Map.of("id", "7"));
                want.put("call_id", "c-info");
                want.put("deadline", 1764284400000L);
                want.put("body_length", 3L);
                want.put("config_value", "configured");
                eq(want, info, "info");

                byte[] big = new byte[5 * 1024 * 1024];
                new java.util.Random(2).nextBytes(big);
                f = call(c, "c-big", big, List.of());
                check(java.util.Arrays.equals(big, (byte[]) f.get("body")), "5 MiB echo");

                req = requestFrame("c-exit", new byte[0]);
                req.put("headers", List.of(List.of("x-hotfn-test", "exit")));
                c.send(req);
                eq(3, c.waitFor(), "exit status");
                String err = c.stderr();
                check(err.contains("noise") && err.contains("log line"), "stderr: " + err);
            }
        });

        test("return values: string, bytes, nil, maps with every header shape", () -> {
            try (TestMain.Child c = hot("testfn/handler")) {
                c.read();
                Map<String, Object> f = call(c, "1", new byte[0], List.of(List.of("x-test", "string")));
                eq(200L, f.get("status"), "status");
                eq(List.of(List.of("content-type", "text/plain; charset=utf-8")), f.get("headers"), "string headers");
                eq("h\u00e9llo", text(f.get("body")), "string body");
                f = call(c, "2", new byte[0], List.of(List.of("x-test", "bytes")));
                eq(new byte[] {0, 1, 2, (byte) 255}, f.get("body"), "bytes");
                eq(List.of(), f.get("headers"), "bytes: no headers");
                f = call(c, "3", new byte[0], List.of(List.of("x-test", "nil")));
                eq(200L, f.get("status"), "nil status");
                eq(new byte[0], f.get("body"), "nil body");
                f = call(c, "4", new byte[0], List.of(List.of("x-test", "keyword-headers")));
                eq(201L, f.get("status"), "status");
                eq(List.of(List.of("x-a", "1"), List.of("x-b", "2"), List.of("content-type", "text/plain; charset=utf-8")),
                        f.get("headers"), "keyword headers");
                f = call(c, "5", new byte[0], List.of(List.of("x-test", "ring-headers")));
                eq(List.of(List.of("set-cookie", "a=1"), List.of("set-cookie", "b=2")), f.get("headers"), "ring headers");
                f = call(c, "6", new byte[0], List.of(List.of("x-test", "pair-headers")));
                eq(202L, f.get("status"), "status");
                eq(List.of(List.of("x-a", "1"), List.of("x-a", "2")), f.get("headers"), "pair headers");
                eq(new byte[] {7}, f.get("body"), "body");
                for (String bad : new String[] {"bad-status", "bad-body", "bad-return"}) {
                    f = call(c, bad, new byte[0], List.of(List.of("x-test", bad)));
                    eq("error", f.get("type"), bad);
                    eq("java.lang.IllegalArgumentException", f.get("error_type"), bad);
                }
                f = call(c, "7", new byte[0], List.of(List.of("x-test", "ex-info")));
                eq("clojure.lang.ExceptionInfo", f.get("error_type"), "ex-info type");
                eq("boom", f.get("message"), "ex-info message");
                f = call(c, "8", new byte[0], List.of(List.of("x-test", "print")));
                eq("response", f.get("type"), "print");
                String keys = text(f.get("body"));
                for (String k : new String[] {":method", ":url", ":path", ":query", ":headers", ":body", ":call-id",
                        ":deadline", ":app", ":route", ":params"}) {
                    check(keys.contains(k), "request map lacks " + k + ": " + keys);
                }
                Map<String, Object> req = requestFrame("9", "b\u00f6dy".getBytes(StandardCharsets.UTF_8));
                req.put("headers", List.of(List.of("x-test", "request")));
                req.put("query", List.of(List.of("tag", "a")));
                req.put("params", Map.of("id", "7"));
                req.put("deadline", 1764284400000L);
                String shown = text(c.call(req).get("body"));
                for (String part : new String[] {":method \"POST\"", ":path \"/users/7\"", ":query [[\"tag\" \"a\"]]",
                        ":headers [[\"x-test\" \"request\"]]", ":body \"b\u00f6dy\"", ":call-id \"9\"",
                        ":deadline 1764284400000", ":app \"demo\"", ":route \"/users/:id\"", ":params {\"id\" \"7\"}"}) {
                    check(shown.contains(part), "request map lacks " + part + ": " + shown);
                }
                c.closeStdin();
                eq(0, c.waitFor(), "exit status");
                String err = c.stderr();
                check(err.contains("testfn loading"), "ns load output not on stderr: " + err);
                check(err.contains("no newline"), "(print) without newline not flushed: " + err);
            }
        });

        test("load failures: no namespace, no var, syntax error -> exit 1", () -> {
            for (String[] h : new String[][] {{"nosuchns/handler", "nosuchns"}, {"testfn/nope", "defines no nope"},
                                               {"syntaxerror/handler", "EOF"}}) {
                try (TestMain.Child c = hot(h[0])) {
                    eq(1, c.waitFor(), "exit status for " + h[0]);
                    eq(-1, c.stdout.read(), "stdout of " + h[0]);
                    check(c.stderr().contains(h[1]), "stderr for " + h[0] + ": " + c.stderr());
                }
            }
        });

        test("cold: conformance echo and info", () -> {
            Map<String, String> env = new LinkedHashMap<>();
            env.put("HOTFN_FORMAT", "default");
            env.put("HOTFN_HANDLER", "hotfn.clojure.ClojureHandler");
            env.put("METHOD", "POST");
            env.put("REQUEST_URL", "http://localhost:8080/r/demo/users/7?tag=a&tag=b");
            env.put("APP_NAME", "demo");
            env.put("ROUTE", "/users/:id");
            env.put("CALL_ID", "cold-1");
            env.put("DEADLINE", "1764284400000");
            env.put("HEADER_X_HOTFN_TEST", "info");
            env.put("PARAM_ID", "7");
            try (TestMain.Child c = new TestMain.Child(env)) {
                c.stdin.write("xyz".getBytes(StandardCharsets.UTF_8));
                c.closeStdin();
                Map<String, Object> info = asMap(Json.parse(new String(c.stdout.readAllBytes(), StandardCharsets.UTF_8)));
                eq(0, c.waitFor(), "exit status");
                eq("/users/7", info.get("path"), "path");
                eq(Map.of("id", "7"), info.get("params"), "params");
                eq(3L, info.get("body_length"), "body_length");
                eq("cold-1", info.get("call_id"), "call_id");
            }
            env.put("HEADER_X_HOTFN_TEST", "raise");
            try (TestMain.Child c = new TestMain.Child(env)) {
                c.closeStdin();
                eq(1, c.waitFor(), "raise -> exit 1");
                check(c.stderr().contains("boom"), "stderr: " + c.stderr());
            }
        });

        test("training run with the built-in namespace exits 0", () -> {
            String java = ProcessHandle.current().info().command().orElse("java");
            ProcessBuilder pb = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "hotfn.Training");
            pb.environment().put("HOTFN_HANDLER", "hotfn.clojure.ClojureHandler");
            pb.environment().put("HOTFN_CLOJURE_HANDLER", "hotfn.clojure.training/handler");
            pb.redirectErrorStream(true);
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            check(p.waitFor(60, TimeUnit.SECONDS), "still running");
            eq(0, p.exitValue(), "exit status; output:\n" + out);
            check(out.contains("training run done (hot loop 0, cold call 0)"), out);
        });

        System.exit(TestMain.runAll(filter));
    }
}
