package hotfn;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What a handler answers: a status (default 200), headers (name/value pairs, in order,
 * repeats allowed) and a body. Setters return {@code this}, so a response reads as one
 * expression:
 *
 * <pre>{@code
 * return Response.ok("hello")                         // 200, text/plain; charset=utf-8
 * return Response.ok(bytes)                           // 200, no content type
 * return Response.of(201, Map.of("location", "/x"), "created")
 * return Response.of(404).header("content-type", "text/plain").body("no such user")
 * return new Response().status(202).header("x-a", "1").header("x-a", "2").body(bytes)
 * }</pre>
 *
 * <p>A String body is sent as UTF-8 and, when no content-type header was set, gets
 * {@code content-type: text/plain; charset=utf-8}. In cold mode only the body reaches the client.
 * A handler returning {@code null} answers 200 with an empty body.
 */
public final class Response {
    static final String TEXT_PLAIN = "text/plain; charset=utf-8";
    private static final byte[] EMPTY = new byte[0];

    private int status = 200;
    private final List<Map.Entry<String, String>> headers = new ArrayList<>(4);
    private byte[] body = EMPTY;
    private boolean textBody;

    /** An empty 200 response; use the setters (or the static helpers) to fill it. */
    public Response() {}

    // ---------------------------------------------------------------- static helpers

    /** 200 with an empty body. */
    public static Response ok() {
        return new Response();
    }

    /** 200 with a UTF-8 text body (content type text/plain; charset=utf-8). */
    public static Response ok(String body) {
        return new Response().body(body);
    }

    /** 200 with a binary body. */
    public static Response ok(byte[] body) {
        return new Response().body(body);
    }

    /** A response with the given status and an empty body. */
    public static Response of(int status) {
        return new Response().status(status);
    }

    /** Status, headers as pairs (order and repeats kept), binary body. */
    public static Response of(int status, List<? extends Map.Entry<String, String>> headers, byte[] body) {
        return new Response().status(status).headers(headers).body(body);
    }

    /** Status, headers as pairs (order and repeats kept), text body. */
    public static Response of(int status, List<? extends Map.Entry<String, String>> headers, String body) {
        return new Response().status(status).headers(headers).body(body);
    }

    /** Status, headers as a map (its iteration order), binary body. */
    public static Response of(int status, Map<String, String> headers, byte[] body) {
        return new Response().status(status).headers(headers).body(body);
    }

    /** Status, headers as a map (its iteration order), text body. */
    public static Response of(int status, Map<String, String> headers, String body) {
        return new Response().status(status).headers(headers).body(body);
    }

    // ---------------------------------------------------------------- setters

    /** Sets the HTTP status (100 to 599; anything else makes the call an error). */
    public Response status(int status) {
        this.status = status;
        return this;
    }

    /** Adds one header (kept in order; a name may repeat). */
    public Response header(String name, String value) {
        if (name == null || value == null) throw new IllegalArgumentException("header name and value must not be null");
        headers.add(Map.entry(name, value));
        return this;
    }

    /** Adds these headers, in order. */
    public Response headers(List<? extends Map.Entry<String, String>> pairs) {
        if (pairs != null) for (Map.Entry<String, String> h : pairs) header(h.getKey(), h.getValue());
        return this;
    }

    /** Adds these headers, in the map's iteration order. */
    public Response headers(Map<String, String> map) {
        if (map != null) for (Map.Entry<String, String> h : map.entrySet()) header(h.getKey(), h.getValue());
        return this;
    }

    /** Shorthand for {@code header("content-type", value)}. */
    public Response contentType(String value) {
        return header("content-type", value);
    }

    /** Sets a binary body (null: empty). */
    public Response body(byte[] body) {
        this.body = body == null ? EMPTY : body;
        this.textBody = false;
        return this;
    }

    /** Sets a UTF-8 text body (null: empty); text/plain unless a content type is set. */
    public Response body(String body) {
        this.body = body == null ? EMPTY : body.getBytes(StandardCharsets.UTF_8);
        this.textBody = body != null;
        return this;
    }

    // ---------------------------------------------------------------- getters

    public int status() {
        return status;
    }

    /** The headers as they will be sent (live list). */
    public List<Map.Entry<String, String>> headers() {
        return headers;
    }

    /** The first value of header {@code name} (any case), or null. */
    public String header(String name) {
        for (Map.Entry<String, String> h : headers) {
            if (h.getKey().equalsIgnoreCase(name)) return h.getValue();
        }
        return null;
    }

    public byte[] body() {
        return body;
    }

    /** The headers hotfn receives: with a default content type for a text body. */
    List<Map.Entry<String, String>> wireHeaders() {
        if (textBody && header("content-type") == null) {
            List<Map.Entry<String, String>> out = new ArrayList<>(headers.size() + 1);
            out.addAll(headers);
            out.add(Map.entry("content-type", TEXT_PLAIN));
            return out;
        }
        return headers;
    }

    /** Throws if hotfn could not send this response (the call then answers an error frame). */
    void check() {
        if (status < 100 || status > 599) {
            throw new IllegalArgumentException("response status must be from 100 to 599, not " + status);
        }
    }

    @Override
    public String toString() {
        return "Response{" + status + ", " + headers + ", " + body.length + " body bytes}";
    }
}
