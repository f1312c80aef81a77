import hotfn.Handler;
import hotfn.Request;
import hotfn.Response;

/**
 * Benchmark function (Java): echo the request body; with {@code x-bench: sum}, parse the body as
 * a JSON array of numbers with a hand-written parser and answer their sum (the JIT probe).
 */
public class Func implements Handler {
    @Override
    public Response handle(Request request) {
        if ("sum".equals(request.header("x-bench", ""))) {
            return Response.ok(Double.toString(JsonSum.sum(request.body())));
        }
        return Response.ok(request.body());
    }
}
