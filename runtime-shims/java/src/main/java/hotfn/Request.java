package hotfn;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One HTTP request, as hotfn hands it to a function (docs/protocol.md, the {@code request}
 * frame). Immutable, except that {@link #body()} returns the array itself (no copy).
 *
 * <p>{@link #query()} and {@link #headers()} are lists of name/value pairs in the order
 * received, repeats kept; header names are lower case. For unit tests of a handler, build one
 * with {@link #builder()}.
 */
public final class Request {
    private final String method;
    private final String url;
    private final String path;
    private final List<Map.Entry<String, String>> query;
    private final List<Map.Entry<String, String>> headers;
    private final byte[] body;
    private final String callId;
    private final long deadline;
    private final String app;
    private final String route;
    private final Map<String, String> params;

    private Request(String method, String url, String path, List<Map.Entry<String, String>> query,
                    List<Map.Entry<String, String>> headers, byte[] body, String callId,
                    long deadline, String app, String route, Map<String, String> params) {
        this.method = method;
        this.url = url;
        this.path = path;
        this.query = query;
        this.headers = headers;
        this.body = body;
        this.callId = callId;
        this.deadline = deadline;
        this.app = app;
        this.route = route;
        this.params = params;
    }

    /** The HTTP method, upper case ({@code "GET"}). */
    public String method() { return method; }

    /** The full URL as the client asked for it: {@code http://host:port/r/app/users/7?x=1}. */
    public String url() { return url; }

    /** The path within the app, without the query: {@code /users/7}. */
    public String path() { return path; }

    /** The query string's pairs, percent-decoded, in order, repeats kept. */
    public List<Map.Entry<String, String>> query() { return query; }

    /** The request headers in the order received, repeats kept; names lower case. */
    public List<Map.Entry<String, String>> headers() { return headers; }

    /** The request body (possibly empty, never null). Not a copy. */
    public byte[] body() { return body; }

    /** The body decoded as UTF-8 (invalid sequences become U+FFFD). */
    public String bodyText() { return new String(body, StandardCharsets.UTF_8); }

    /** The unique id of this call. */
    public String callId() { return callId; }

    /** When hotfn gives up on this call: milliseconds since the Unix epoch (0 if unknown). */
    public long deadline() { return deadline; }

    /** The app name. */
    public String app() { return app; }

    /** The route's path pattern: {@code /users/:id}. */
    public String route() { return route; }

    /** The path parameters the route pattern matched: {@code {"id": "7"}} (may be empty). */
    public Map<String, String> params() { return params; }

    /** The value of path parameter {@code name}, or null. */
    public String param(String name) { return params.get(name); }

    /** The first value of header {@code name} (any case), or null. */
    public String header(String name) {
        for (int i = 0, n = headers.size(); i < n; i++) {
            Map.Entry<String, String> h = headers.get(i);
            if (h.getKey().equalsIgnoreCase(name)) return h.getValue();
        }
        return null;
    }

    /** The first value of header {@code name} (any case), or {@code fallback}. */
    public String header(String name, String fallback) {
        String v = header(name);
        return v == null ? fallback : v;
    }

    /** Every value of header {@code name} (any case), in order. */
    public List<String> headerValues(String name) {
        List<String> out = new ArrayList<>(2);
        for (Map.Entry<String, String> h : headers) {
            if (h.getKey().equalsIgnoreCase(name)) out.add(h.getValue());
        }
        return out;
    }

    /** The first value of query parameter {@code name} (exact case), or null. */
    public String queryParam(String name) {
        for (Map.Entry<String, String> q : query) {
            if (q.getKey().equals(name)) return q.getValue();
        }
        return null;
    }

    /** Milliseconds left until {@link #deadline()} (negative once past; Long.MAX_VALUE if unknown). */
    public long remainingMillis() {
        return deadline == 0 ? Long.MAX_VALUE : deadline - System.currentTimeMillis();
    }

    @Override
    public String toString() {
        return "Request{" + method + " " + url + ", call " + callId + ", " + body.length + " body bytes}";
    }

    // ---------------------------------------------------------------- construction

    /** From a validated request frame (Frames.decodePayload). */
    @SuppressWarnings("unchecked")
    static Request fromFrame(Map<String, Object> f) {
        Map<String, Object> rawParams = (Map<String, Object>) f.get("params");
        Map<String, String> params = rawParams.isEmpty()
                ? Collections.emptyMap()
                : Collections.unmodifiableMap((Map<String, String>) (Map<String, ?>) rawParams);
        return new Request(
                (String) f.get("method"),
                (String) f.get("url"),
                (String) f.get("path"),
                pairs((List<Object>) f.get("query")),
                pairs((List<Object>) f.get("headers")),
                (byte[]) f.get("body"),
                (String) f.get("call_id"),
                (Long) f.get("deadline"),
                (String) f.get("app"),
                (String) f.get("route"),
                params);
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static List<Map.Entry<String, String>> pairs(List<Object> raw) {
        int n = raw.size();
        if (n == 0) return Collections.emptyList();
        Map.Entry<String, String>[] out = new Map.Entry[n];
        for (int i = 0; i < n; i++) {
            List<Object> pair = (List<Object>) raw.get(i);
            out[i] = Map.entry((String) pair.get(0), (String) pair.get(1));
        }
        return List.of(out);
    }

    /** A builder, for tests of handlers and for cold mode. */
    public static Builder builder() {
        return new Builder();
    }

    /** Builds a {@link Request}; every field has a neutral default ({@code GET /}, empty body). */
    public static final class Builder {
        private String method = "GET";
        private String url = "http://localhost/";
        private String path = "/";
        private final List<Map.Entry<String, String>> query = new ArrayList<>();
        private final List<Map.Entry<String, String>> headers = new ArrayList<>();
        private byte[] body = new byte[0];
        private String callId = "";
        private long deadline = 0;
        private String app = "";
        private String route = "";
        private final Map<String, String> params = new LinkedHashMap<>();

        private Builder() {}

        public Builder method(String method) { this.method = method; return this; }
        public Builder url(String url) { this.url = url; return this; }
        public Builder path(String path) { this.path = path; return this; }
        public Builder query(String name, String value) { query.add(Map.entry(name, value)); return this; }
        /** Adds a header; the name is lower-cased, as hotfn does. */
        public Builder header(String name, String value) {
            headers.add(Map.entry(name.toLowerCase(java.util.Locale.ROOT), value));
            return this;
        }
        public Builder body(byte[] body) { this.body = body == null ? new byte[0] : body; return this; }
        public Builder body(String body) { return body(body.getBytes(StandardCharsets.UTF_8)); }
        public Builder callId(String callId) { this.callId = callId; return this; }
        public Builder deadline(long deadline) { this.deadline = deadline; return this; }
        public Builder app(String app) { this.app = app; return this; }
        public Builder route(String route) { this.route = route; return this; }
        public Builder param(String name, String value) { params.put(name, value); return this; }

        public Request build() {
            return new Request(method, url, path, List.copyOf(query), List.copyOf(headers), body,
                    callId, deadline, app, route,
                    Collections.unmodifiableMap(new LinkedHashMap<>(params)));
        }
    }
}
