package hotfn;

/** The peer broke the frame protocol (docs/protocol.md); the stream cannot be trusted any more. */
final class ProtocolException extends Exception {
    private static final long serialVersionUID = 1L;

    enum Kind { OVERSIZED, MALFORMED, TRUNCATED }

    final Kind kind;

    ProtocolException(Kind kind, String message) {
        super(message, null, false, false);
        this.kind = kind;
    }

    static ProtocolException malformed(String message) {
        return new ProtocolException(Kind.MALFORMED, message);
    }

    static ProtocolException truncated(String message) {
        return new ProtocolException(Kind.TRUNCATED, message);
    }

    static ProtocolException oversized(long size, int limit) {
        return new ProtocolException(
                Kind.OVERSIZED, "frame of " + size + " bytes exceeds the " + limit + "-byte limit");
    }
}
