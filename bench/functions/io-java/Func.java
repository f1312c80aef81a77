import hotfn.Handler;
import hotfn.Request;
import hotfn.Response;

/**
 * Benchmark function (Java): wait x-wait-ms (default 10) as if on I/O, then echo the body. With
 * HOTFN_CONCURRENCY=N the shim runs N calls at once on its thread pool (the concurrency bench).
 */
public class Func implements Handler {
    @Override
    public Response handle(Request request) throws Exception {
        Thread.sleep(Long.parseLong(request.header("x-wait-ms", "10")));
        return Response.ok(request.body());
    }
}
