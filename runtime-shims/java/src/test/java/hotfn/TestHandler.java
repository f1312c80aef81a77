package hotfn;

import java.nio.charset.StandardCharsets;
import java.util.Map;

/** The handler the child-process tests run, selected per request by header {@code x-test}. */
public class TestHandler implements Handler, WarmUp {
    public TestHandler() {
        // Output before the ready frame must not reach the real stdout either.
        System.out.println("TestHandler constructed");
    }

    @Override
    public void warmUp(Request sample) {
        System.err.println("TestHandler warm-up with " + sample.callId());
        if ("throw".equals(System.getenv("TEST_WARMUP"))) throw new IllegalStateException("warm-up boom");
    }

    @Override
    public Response handle(Request r) throws Exception {
        String test = r.header("X-Test", "echo");
        switch (test) {
            case "status":
                return Response.of(Integer.parseInt(r.header("x-status")))
                        .header("x-custom", "yes")
                        .header("set-cookie", "a=1")
                        .header("set-cookie", "b=2")
                        .header("x-name", "Zo\u00eb \u2013 \u6771\u4eac")
                        .body("status");
            case "throw":
                throw new IllegalStateException("boom");
            case "print":
                System.out.println("noise from System.out");
                System.out.print("no newline");
                System.err.println("log line");
                break;
            case "big":
                return Response.ok(new byte[Integer.parseInt(r.header("x-size"))]);
            case "null":
                return null;
            case "badstatus":
                return Response.of(42);
            case "text":
                return Response.ok("h\u00e9llo");
            case "exit":
                java.lang.Runtime.getRuntime().halt(3);
                break;
            case "thread":
                Thread t = new Thread(() -> {
                    try { Thread.sleep(600_000); } catch (InterruptedException ignored) { }
                });
                t.setDaemon(false);
                t.start();
                break;
            case "sleep": // a call waiting on I/O, for the concurrency tests
                Thread.sleep(Long.parseLong(r.header("x-sleep-ms", "10")));
                break;
            case "info":
                return Response.ok(info(r));
            default:
                break;
        }
        Response out = Response.ok(r.body()).header("x-method", r.method()).header("x-call-id", r.callId());
        for (Map.Entry<String, String> h : r.headers()) {
            if (h.getKey().startsWith("x-echo-")) out.header(h.getKey(), h.getValue());
        }
        return out;
    }

    static String info(Request r) {
        return "method=" + r.method() + "\nurl=" + r.url() + "\npath=" + r.path()
                + "\nquery=" + r.query() + "\nheaders=" + r.headers() + "\nparams=" + r.params()
                + "\ncall_id=" + r.callId() + "\ndeadline=" + r.deadline() + "\napp=" + r.app()
                + "\nroute=" + r.route() + "\nbody=" + new String(r.body(), StandardCharsets.UTF_8)
                + "\nheader(Content-Type)=" + r.header("Content-Type") + "\n";
    }
}
