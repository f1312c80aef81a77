package hotfn;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The msgpack subset hotfn frames use: nil, bool, int (every width), float, str, bin, array
 * and map with str keys. {@code ext} is refused, as the protocol requires.
 *
 * <p>Decoded values: {@code null}, {@link Boolean}, {@link Long} (or {@link BigInteger} for a
 * uint64 above {@code Long.MAX_VALUE}), {@link Double}, {@link String}, {@code byte[]},
 * {@link List} and {@link LinkedHashMap} (key order kept).
 *
 * <p>Hand-written rather than msgpack-java: frames need only this subset, the decoder must be
 * strict (ext, invalid UTF-8, trailing bytes, lengths past the end are all errors, checked
 * before allocating), and one small class keeps the runtime a single dependency-free jar.
 */
final class Msgpack {
    private Msgpack() {}

    /** Deeper nesting than this is refused (a 6 MiB frame of 0x91 bytes must not overflow the stack). */
    static final int MAX_DEPTH = 256;

    // ---------------------------------------------------------------- decoding

    /** Exactly one value from {@code buf[off, off+len)}; no bytes may be left over. */
    static Object decode(byte[] buf, int off, int len) throws ProtocolException {
        Reader r = new Reader(buf, off, off + len);
        Object value = r.read(0);
        if (r.pos != r.end) {
            throw ProtocolException.malformed(
                    "payload has " + (r.end - r.pos) + " bytes after the msgpack value");
        }
        return value;
    }

    static final class Reader {
        private final byte[] b;
        int pos;
        final int end;

        Reader(byte[] b, int pos, int end) {
            this.b = b;
            this.pos = pos;
            this.end = end;
        }

        private static ProtocolException truncated() {
            return ProtocolException.malformed("msgpack data ends inside a value");
        }

        private void need(long n) throws ProtocolException {
            if (n > end - pos) throw truncated();
        }

        private int u8() throws ProtocolException {
            need(1);
            return b[pos++] & 0xff;
        }

        private int u16() throws ProtocolException {
            need(2);
            int v = ((b[pos] & 0xff) << 8) | (b[pos + 1] & 0xff);
            pos += 2;
            return v;
        }

        private long u32() throws ProtocolException {
            need(4);
            long v = ((long) (b[pos] & 0xff) << 24) | ((b[pos + 1] & 0xff) << 16)
                    | ((b[pos + 2] & 0xff) << 8) | (b[pos + 3] & 0xff);
            pos += 4;
            return v;
        }

        private long i64() throws ProtocolException {
            need(8);
            long v = 0;
            for (int i = 0; i < 8; i++) v = (v << 8) | (b[pos + i] & 0xff);
            pos += 8;
            return v;
        }

        Object read(int depth) throws ProtocolException {
            int t = u8();
            if (t <= 0x7f) return Long.valueOf(t); // positive fixint
            if (t >= 0xe0) return Long.valueOf((byte) t); // negative fixint
            if (t <= 0x8f) return map(t & 0x0f, depth);
            if (t <= 0x9f) return array(t & 0x0f, depth);
            if (t <= 0xbf) return str(t & 0x1f);
            switch (t) {
                case 0xc0: return null;
                case 0xc2: return Boolean.FALSE;
                case 0xc3: return Boolean.TRUE;
                case 0xc4: return bin(u8());
                case 0xc5: return bin(u16());
                case 0xc6: return bin(u32());
                case 0xca: return (double) Float.intBitsToFloat((int) u32());
                case 0xcb: return Double.longBitsToDouble(i64());
                case 0xcc: return Long.valueOf(u8());
                case 0xcd: return Long.valueOf(u16());
                case 0xce: return Long.valueOf(u32());
                case 0xcf: {
                    long v = i64();
                    if (v >= 0) return Long.valueOf(v);
                    return new BigInteger(1, ByteBuffer.allocate(8).putLong(v).array());
                }
                case 0xd0: need(1); return Long.valueOf(b[pos++]);
                case 0xd1: return Long.valueOf((short) u16());
                case 0xd2: return Long.valueOf((int) u32());
                case 0xd3: return Long.valueOf(i64());
                case 0xd9: return str(u8());
                case 0xda: return str(u16());
                case 0xdb: return str(u32());
                case 0xdc: return array(u16(), depth);
                case 0xdd: return array(u32(), depth);
                case 0xde: return map(u16(), depth);
                case 0xdf: return map(u32(), depth);
                case 0xc7: case 0xc8: case 0xc9:
                case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
                    throw ProtocolException.malformed("msgpack ext types are not allowed in frames");
                default: // 0xc1
                    throw ProtocolException.malformed(
                            "invalid msgpack type byte 0x" + Integer.toHexString(t));
            }
        }

        private byte[] bin(long len) throws ProtocolException {
            need(len);
            int start = pos;
            pos += (int) len;
            return Arrays.copyOfRange(b, start, pos);
        }

        private String str(long len) throws ProtocolException {
            need(len);
            int start = pos;
            int n = (int) len;
            pos += n;
            return utf8(b, start, n);
        }

        private List<Object> array(long count, int depth) throws ProtocolException {
            if (depth >= MAX_DEPTH) throw ProtocolException.malformed("msgpack nesting too deep");
            need(count); // every element takes at least one byte: check before allocating
            int n = (int) count;
            ArrayList<Object> list = new ArrayList<>(n);
            for (int i = 0; i < n; i++) list.add(read(depth + 1));
            return list;
        }

        private Map<String, Object> map(long count, int depth) throws ProtocolException {
            if (depth >= MAX_DEPTH) throw ProtocolException.malformed("msgpack nesting too deep");
            need(count * 2);
            int n = (int) count;
            LinkedHashMap<String, Object> map = new LinkedHashMap<>(n * 4 / 3 + 1);
            for (int i = 0; i < n; i++) {
                Object key = read(depth + 1);
                if (!(key instanceof String)) {
                    throw ProtocolException.malformed(
                            "map keys must be str, not " + typeName(key));
                }
                map.put((String) key, read(depth + 1));
            }
            return map;
        }
    }

    /** Strict UTF-8: invalid sequences (overlong, surrogates, truncated) are malformed. */
    static String utf8(byte[] b, int off, int len) throws ProtocolException {
        int end = off + len;
        for (int i = off; i < end; i++) {
            if (b[i] < 0) return utf8Slow(b, off, len);
        }
        return new String(b, off, len, StandardCharsets.ISO_8859_1); // ASCII: the fast path
    }

    private static String utf8Slow(byte[] b, int off, int len) throws ProtocolException {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(b, off, len))
                    .toString();
        } catch (CharacterCodingException e) {
            throw ProtocolException.malformed("msgpack str is not valid UTF-8");
        }
    }

    static String typeName(Object v) {
        if (v == null) return "nil";
        if (v instanceof String) return "str";
        if (v instanceof byte[]) return "bin";
        if (v instanceof Long || v instanceof BigInteger) return "int";
        if (v instanceof Boolean) return "bool";
        if (v instanceof Double) return "float";
        if (v instanceof List) return "array";
        if (v instanceof Map) return "map";
        return v.getClass().getName();
    }

    // ---------------------------------------------------------------- encoding

    /**
     * A growable output buffer. Frame encoders reserve the 4 length bytes first and patch them
     * at the end, so a whole frame is one array written with one call.
     */
    static final class Writer {
        byte[] buf;
        int len;

        Writer(int capacity) {
            buf = new byte[Math.max(capacity, 16)];
        }

        void reset() {
            len = 0;
        }

        void ensure(int extra) {
            long needed = (long) len + extra;
            if (needed > buf.length) {
                if (needed > Integer.MAX_VALUE - 8) throw new OutOfMemoryError("frame too large");
                long grown = Math.max(needed, Math.min((long) buf.length * 2, Integer.MAX_VALUE - 8));
                buf = Arrays.copyOf(buf, (int) grown);
            }
        }

        void u8(int v) {
            ensure(1);
            buf[len++] = (byte) v;
        }

        private void be(long v, int bytes) {
            ensure(bytes);
            for (int i = bytes - 1; i >= 0; i--) buf[len++] = (byte) (v >>> (8 * i));
        }

        void mapHeader(int n) {
            if (n < 16) u8(0x80 | n);
            else if (n < 0x10000) { u8(0xde); be(n, 2); }
            else { u8(0xdf); be(n, 4); }
        }

        void arrayHeader(int n) {
            if (n < 16) u8(0x90 | n);
            else if (n < 0x10000) { u8(0xdc); be(n, 2); }
            else { u8(0xdd); be(n, 4); }
        }

        void nil() {
            u8(0xc0);
        }

        void bool(boolean v) {
            u8(v ? 0xc3 : 0xc2);
        }

        void integer(long v) {
            if (v >= 0) {
                if (v < 0x80) u8((int) v);
                else if (v < 0x100) { u8(0xcc); be(v, 1); }
                else if (v < 0x10000) { u8(0xcd); be(v, 2); }
                else if (v < 0x100000000L) { u8(0xce); be(v, 4); }
                else { u8(0xcf); be(v, 8); }
            } else {
                if (v >= -32) u8((int) v & 0xff);
                else if (v >= Byte.MIN_VALUE) { u8(0xd0); be(v, 1); }
                else if (v >= Short.MIN_VALUE) { u8(0xd1); be(v, 2); }
                else if (v >= Integer.MIN_VALUE) { u8(0xd2); be(v, 4); }
                else { u8(0xd3); be(v, 8); }
            }
        }

        void float64(double v) {
            u8(0xcb);
            be(Double.doubleToRawLongBits(v), 8);
        }

        private void strHeader(int n) {
            if (n < 32) u8(0xa0 | n);
            else if (n < 0x100) { u8(0xd9); be(n, 1); }
            else if (n < 0x10000) { u8(0xda); be(n, 2); }
            else { u8(0xdb); be(n, 4); }
        }

        @SuppressWarnings("deprecation")
        void str(String s) {
            int n = s.length();
            // ASCII (nearly every key, method, header name): no intermediate byte[].
            ascii:
            if (n < 0x10000) {
                for (int i = 0; i < n; i++) {
                    if (s.charAt(i) >= 0x80) break ascii;
                }
                strHeader(n);
                ensure(n);
                s.getBytes(0, n, buf, len); // deprecated but exact for ASCII, and fast
                len += n;
                return;
            }
            byte[] utf8 = s.getBytes(StandardCharsets.UTF_8); // unpaired surrogates become '?'
            strHeader(utf8.length);
            raw(utf8, 0, utf8.length);
        }

        void bin(byte[] b) {
            bin(b, 0, b.length);
        }

        void bin(byte[] b, int off, int n) {
            if (n < 0x100) { u8(0xc4); be(n, 1); }
            else if (n < 0x10000) { u8(0xc5); be(n, 2); }
            else { u8(0xc6); be(n, 4); }
            raw(b, off, n);
        }

        void raw(byte[] b, int off, int n) {
            ensure(n);
            System.arraycopy(b, off, buf, len, n);
            len += n;
        }

        /** Any value Msgpack decodes to (plus Integer, Map.Entry as a pair and arrays of pairs). */
        void value(Object v) {
            if (v == null) nil();
            else if (v instanceof String) str((String) v);
            else if (v instanceof byte[]) bin((byte[]) v);
            else if (v instanceof Boolean) bool((Boolean) v);
            else if (v instanceof Long || v instanceof Integer || v instanceof Short
                    || v instanceof Byte) integer(((Number) v).longValue());
            else if (v instanceof BigInteger) {
                BigInteger big = (BigInteger) v;
                if (big.bitLength() <= 63) integer(big.longValue());
                else if (big.signum() > 0 && big.bitLength() <= 64) { u8(0xcf); be(big.longValue(), 8); }
                else throw new IllegalArgumentException("integer out of msgpack range: " + big);
            } else if (v instanceof Double || v instanceof Float) float64(((Number) v).doubleValue());
            else if (v instanceof Map.Entry) {
                Map.Entry<?, ?> e = (Map.Entry<?, ?>) v;
                arrayHeader(2);
                value(e.getKey());
                value(e.getValue());
            } else if (v instanceof List) {
                List<?> list = (List<?>) v;
                arrayHeader(list.size());
                for (Object o : list) value(o);
            } else if (v instanceof Map) {
                Map<?, ?> map = (Map<?, ?>) v;
                mapHeader(map.size());
                for (Map.Entry<?, ?> e : map.entrySet()) {
                    if (!(e.getKey() instanceof String)) {
                        throw new IllegalArgumentException("map keys must be strings");
                    }
                    str((String) e.getKey());
                    value(e.getValue());
                }
            } else {
                throw new IllegalArgumentException("cannot encode " + v.getClass().getName());
            }
        }
    }

    /** The msgpack bytes of one value (no frame prefix). */
    static byte[] encode(Object value) {
        Writer w = new Writer(64);
        w.value(value);
        return Arrays.copyOf(w.buf, w.len);
    }
}
