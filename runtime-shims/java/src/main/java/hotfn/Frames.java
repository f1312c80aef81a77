package hotfn;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigInteger;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Frames of protocol v1 (docs/protocol.md): a big-endian uint32 payload length, then one
 * msgpack map. Decoding validates every frame type's required keys and drops unknown keys;
 * encoding writes the frames a container sends (ready, response, error).
 */
final class Frames {
    private Frames() {}

    static final int PROTOCOL_VERSION = 1;
    static final int DEFAULT_MAX_FRAME_SIZE = 6 * 1024 * 1024;

    /** HOTFN_MAX_FRAME_SIZE, or the default when it is unset or not a positive int. */
    static int maxFrameSize(String value) {
        if (value == null || value.isBlank()) return DEFAULT_MAX_FRAME_SIZE;
        try {
            long v = Long.parseLong(value.trim());
            if (v > 0) return (int) Math.min(v, Integer.MAX_VALUE - 8);
        } catch (NumberFormatException ignored) {
            // fall through
        }
        System.err.println("hotfn-java: ignoring invalid HOTFN_MAX_FRAME_SIZE=" + value);
        return DEFAULT_MAX_FRAME_SIZE;
    }

    // ---------------------------------------------------------------- decoding

    /**
     * One frame from one complete payload: a map holding only the keys the frame's type
     * defines, each checked (pairs stay {@code List<List<String>>}, bodies {@code byte[]},
     * ints {@code Long}, or {@code BigInteger} past the long range).
     */
    static Map<String, Object> decodePayload(byte[] payload, int off, int len)
            throws ProtocolException {
        Object value = Msgpack.decode(payload, off, len);
        if (!(value instanceof Map)) {
            throw ProtocolException.malformed(
                    "frame payload must be a map, not " + Msgpack.typeName(value));
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) value;
        Object type = m.get("type");
        Map<String, Object> out = new LinkedHashMap<>(20);
        if ("request".equals(type)) {
            out.put("type", type);
            str(m, out, "call_id");
            str(m, out, "method");
            str(m, out, "url");
            str(m, out, "path");
            pairs(m, out, "query");
            pairs(m, out, "headers");
            bin(m, out, "body");
            Object deadline = integer(m, out, "deadline");
            if (!(deadline instanceof Long)) {
                throw ProtocolException.malformed("request frame field 'deadline' is out of range");
            }
            str(m, out, "app");
            str(m, out, "route");
            Object params = field(m, "params");
            if (!(params instanceof Map)) throw wrongType(m, "params", "map", params);
            for (Object v : ((Map<?, ?>) params).values()) {
                if (!(v instanceof String)) {
                    throw ProtocolException.malformed("request frame field 'params' must map str to str");
                }
            }
            out.put("params", params);
        } else if ("response".equals(type)) {
            out.put("type", type);
            str(m, out, "call_id");
            integer(m, out, "status");
            pairs(m, out, "headers");
            bin(m, out, "body");
        } else if ("error".equals(type)) {
            out.put("type", type);
            str(m, out, "call_id");
            str(m, out, "error_type");
            str(m, out, "message");
            str(m, out, "trace");
        } else if ("ready".equals(type)) {
            out.put("type", type);
            integer(m, out, "version");
            str(m, out, "runtime");
            if (m.containsKey("concurrency")) integer(m, out, "concurrency"); // optional
        } else if (type == null && !m.containsKey("type")) {
            throw ProtocolException.malformed("frame lacks 'type'");
        } else {
            throw ProtocolException.malformed(
                    "unknown frame type " + (type instanceof String ? "'" + type + "'" : Msgpack.typeName(type)));
        }
        return out;
    }

    private static Object field(Map<String, Object> m, String key) throws ProtocolException {
        Object v = m.get(key);
        if (v == null && !m.containsKey(key)) {
            throw ProtocolException.malformed(m.get("type") + " frame lacks '" + key + "'");
        }
        return v;
    }

    private static ProtocolException wrongType(Map<String, Object> m, String key, String kind, Object v) {
        return ProtocolException.malformed(m.get("type") + " frame field '" + key + "' must be "
                + kind + ", not " + Msgpack.typeName(v));
    }

    private static void str(Map<String, Object> m, Map<String, Object> out, String key)
            throws ProtocolException {
        Object v = field(m, key);
        if (!(v instanceof String)) throw wrongType(m, key, "str", v);
        out.put(key, v);
    }

    private static void bin(Map<String, Object> m, Map<String, Object> out, String key)
            throws ProtocolException {
        Object v = field(m, key);
        if (!(v instanceof byte[])) throw wrongType(m, key, "bin", v);
        out.put(key, v);
    }

    private static Object integer(Map<String, Object> m, Map<String, Object> out, String key)
            throws ProtocolException {
        Object v = field(m, key);
        if (!(v instanceof Long || v instanceof BigInteger)) throw wrongType(m, key, "int", v);
        out.put(key, v);
        return v;
    }

    private static void pairs(Map<String, Object> m, Map<String, Object> out, String key)
            throws ProtocolException {
        Object v = field(m, key);
        if (!(v instanceof List)) throw wrongType(m, key, "array", v);
        for (Object item : (List<?>) v) {
            if (!(item instanceof List)
                    || ((List<?>) item).size() != 2
                    || !(((List<?>) item).get(0) instanceof String)
                    || !(((List<?>) item).get(1) instanceof String)) {
                throw ProtocolException.malformed(
                        m.get("type") + " frame field '" + key + "' must hold [str, str] pairs");
            }
        }
        out.put(key, v);
    }

    // ---------------------------------------------------------------- reading a stream

    /** Reads whole frames from a blocking stream (the real stdin). */
    static final class Reader {
        private final InputStream in;
        private final int maxFrameSize;
        private final byte[] prefix = new byte[4];

        Reader(InputStream in, int maxFrameSize) {
            this.in = in;
            this.maxFrameSize = maxFrameSize;
        }

        /**
         * The next payload, or null after a clean EOF between frames. An oversized length is
         * refused as soon as the prefix is in, before anything is allocated for it.
         */
        byte[] nextPayload() throws IOException, ProtocolException {
            int got = in.readNBytes(prefix, 0, 4);
            if (got == 0) return null;
            if (got < 4) throw ProtocolException.truncated("stdin ended inside a frame's length prefix");
            long size = ((long) (prefix[0] & 0xff) << 24) | ((prefix[1] & 0xff) << 16)
                    | ((prefix[2] & 0xff) << 8) | (prefix[3] & 0xff);
            if (size == 0) throw ProtocolException.malformed("frame length 0");
            if (size > maxFrameSize) throw ProtocolException.oversized(size, maxFrameSize);
            byte[] payload = new byte[(int) size];
            int n = in.readNBytes(payload, 0, payload.length);
            if (n < payload.length) {
                throw ProtocolException.truncated(
                        "stdin ended inside a frame (" + n + " of " + size + " payload bytes)");
            }
            return payload;
        }

        /** The next frame (validated, known keys only), or null after a clean EOF. */
        Map<String, Object> next() throws IOException, ProtocolException {
            byte[] payload = nextPayload();
            return payload == null ? null : decodePayload(payload, 0, payload.length);
        }
    }

    // ---------------------------------------------------------------- encoding

    /**
     * Encodes the frames a container sends into one reusable buffer, length prefix included,
     * so that each frame leaves with a single write.
     */
    static final class Writer {
        private static final int KEEP_BYTES = 1 << 20; // a buffer grown past this is dropped after use

        private final int maxFrameSize;
        private Msgpack.Writer w = new Msgpack.Writer(8192);

        Writer(int maxFrameSize) {
            this.maxFrameSize = maxFrameSize;
        }

        int maxFrameSize() {
            return maxFrameSize;
        }

        private void begin(int sizeHint) {
            if (w.buf.length < sizeHint) w = new Msgpack.Writer(sizeHint);
            w.reset();
            w.len = 4;
        }

        private void end() throws ProtocolException {
            int size = w.len - 4;
            if (size > maxFrameSize) throw ProtocolException.oversized(size, maxFrameSize);
            w.buf[0] = (byte) (size >>> 24);
            w.buf[1] = (byte) (size >>> 16);
            w.buf[2] = (byte) (size >>> 8);
            w.buf[3] = (byte) size;
        }

        void ready(String runtime) throws ProtocolException {
            ready(runtime, 1);
        }

        /** The ready frame; {@code concurrency} above 1 is announced (protocol 2.2.1), 1 is not. */
        void ready(String runtime, int concurrency) throws ProtocolException {
            begin(0);
            w.mapHeader(concurrency > 1 ? 4 : 3);
            w.str("type");
            w.str("ready");
            w.str("version");
            w.integer(PROTOCOL_VERSION);
            w.str("runtime");
            w.str(runtime);
            if (concurrency > 1) {
                w.str("concurrency");
                w.integer(concurrency);
            }
            end();
        }

        void response(String callId, int status, List<Map.Entry<String, String>> headers, byte[] body)
                throws ProtocolException {
            if (body.length > maxFrameSize) {
                // Refuse before copying megabytes into the buffer.
                throw ProtocolException.oversized(body.length, maxFrameSize);
            }
            begin(body.length + 1024);
            w.mapHeader(5);
            w.str("type");
            w.str("response");
            w.str("call_id");
            w.str(callId);
            w.str("status");
            w.integer(status);
            w.str("headers");
            w.arrayHeader(headers.size());
            for (Map.Entry<String, String> h : headers) {
                w.u8(0x92);
                w.str(h.getKey());
                w.str(h.getValue());
            }
            w.str("body");
            w.bin(body);
            end();
        }

        /** An error frame; message and trace are cut short if the frame would not fit. */
        void error(String callId, String errorType, String message, String trace)
                throws ProtocolException {
            try {
                error0(callId, errorType, message, trace);
                return;
            } catch (ProtocolException tooLarge) {
                // fall through and shorten
            }
            int keep = Math.max(0, maxFrameSize / 8 - 64); // chars; UTF-8 takes <= 3 bytes per char
            try {
                error0(callId, errorType, cut(message, keep), cut(trace, keep));
            } catch (ProtocolException stillTooLarge) {
                error0(callId, cut(errorType, 64), "", "");
            }
        }

        private static String cut(String s, int keep) {
            return s.length() <= keep ? s : s.substring(0, keep) + "... [cut]";
        }

        private void error0(String callId, String errorType, String message, String trace)
                throws ProtocolException {
            begin(0);
            w.mapHeader(5);
            w.str("type");
            w.str("error");
            w.str("call_id");
            w.str(callId);
            w.str("error_type");
            w.str(errorType);
            w.str("message");
            w.str(message);
            w.str("trace");
            w.str(trace);
            end();
        }

        /** A generic map as a frame (tests, and frames this class has no method for). */
        void map(Map<String, ?> frame) throws ProtocolException {
            begin(0);
            w.value(frame);
            end();
        }

        /** The encoded frame, prefix included: {@code bytes()[0, length())}. */
        byte[] bytes() {
            return w.buf;
        }

        int length() {
            return w.len;
        }

        byte[] toByteArray() {
            return java.util.Arrays.copyOf(w.buf, w.len);
        }

        /** Writes the frame with one call and flushes; a large buffer is released afterwards. */
        void writeTo(OutputStream out) throws IOException {
            out.write(w.buf, 0, w.len);
            out.flush();
            if (w.buf.length > KEEP_BYTES) w = new Msgpack.Writer(8192);
        }
    }
}
