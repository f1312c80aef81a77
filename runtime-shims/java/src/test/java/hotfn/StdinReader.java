package hotfn;

/** Reads System.in in a call: it must get EOF, not the next frame's bytes. */
public class StdinReader implements Handler {
    @Override
    public Response handle(Request request) throws Exception {
        return Response.ok(String.valueOf(System.in.read()).getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
}
