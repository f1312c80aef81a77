import hotfn.Handler;
import hotfn.Request;
import hotfn.Response;

import java.util.List;
import java.util.Map;

/** The conformance function (docs/runtimes.md), written with the Java shim. */
public class Func implements Handler {
    @Override
    public Response handle(Request request) throws Exception {
        String test = request.header("x-hotfn-test", "echo");
        switch (test) {
            case "status":
                return Response.of(Integer.parseInt(request.header("x-status").trim()))
                        .header("x-custom", "yes")
                        .body("status");
            case "raise":
                throw new RuntimeException("boom");
            case "print":
                System.out.println("noise");
                break;
            case "stderr":
                System.err.println("log line");
                break;
            case "sleep":
                Thread.sleep(Long.parseLong(request.header("x-sleep-ms", "0").trim()));
                break;
            case "exit":
                java.lang.Runtime.getRuntime().halt(3);
                break;
            case "info":
                return Response.ok(info(request)).contentType("application/json");
            default:
                break;
        }
        return echo(request);
    }

    private static Response echo(Request request) {
        Response response = Response.ok(request.body())
                .header("x-method", request.method())
                .header("x-call-id", request.callId());
        for (Map.Entry<String, String> h : request.headers()) {
            if (h.getKey().startsWith("x-echo-")) response.header(h.getKey(), h.getValue());
        }
        return response;
    }

    private static String info(Request r) {
        StringBuilder json = new StringBuilder(512).append('{');
        json.append("\"method\":").append(str(r.method()));
        json.append(",\"url\":").append(str(r.url()));
        json.append(",\"path\":").append(str(r.path()));
        json.append(",\"query\":").append(pairs(r.query()));
        json.append(",\"headers\":").append(pairs(r.headers()));
        json.append(",\"app\":").append(str(r.app()));
        json.append(",\"route\":").append(str(r.route()));
        json.append(",\"params\":{");
        String sep = "";
        for (Map.Entry<String, String> p : r.params().entrySet()) {
            json.append(sep).append(str(p.getKey())).append(':').append(str(p.getValue()));
            sep = ",";
        }
        json.append('}');
        json.append(",\"call_id\":").append(str(r.callId()));
        json.append(",\"deadline\":").append(r.deadline());
        json.append(",\"body_length\":").append(r.body().length);
        String config = System.getenv("CONFORMANCE_CONFIG");
        json.append(",\"config_value\":").append(config == null ? "null" : str(config));
        return json.append('}').toString();
    }

    private static String pairs(List<Map.Entry<String, String>> pairs) {
        StringBuilder out = new StringBuilder().append('[');
        String sep = "";
        for (Map.Entry<String, String> p : pairs) {
            out.append(sep).append('[').append(str(p.getKey())).append(',').append(str(p.getValue())).append(']');
            sep = ",";
        }
        return out.append(']').toString();
    }

    /** A JSON string literal. */
    private static String str(String s) {
        StringBuilder out = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20 || Character.isSurrogate(c) && !validSurrogate(s, i)) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }

    private static boolean validSurrogate(String s, int i) {
        char c = s.charAt(i);
        if (Character.isHighSurrogate(c)) return i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
        return i > 0 && Character.isHighSurrogate(s.charAt(i - 1));
    }
}
