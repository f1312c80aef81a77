package hotfn;

/**
 * A hotfn function in Java: one instance is constructed when the container starts (before the
 * ready frame, so heavy set-up belongs in the constructor) and then called once per request.
 *
 * <p>Calls are sequential: hotfn sends a container one request at a time, so a handler needs
 * no synchronisation of its own. An exception becomes an {@code error} frame (hotfn answers
 * 502) and the container goes on serving.
 */
@FunctionalInterface
public interface Handler {
    Response handle(Request request) throws Exception;
}
