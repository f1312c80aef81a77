package hotfn;

public class ThrowingConstructor implements Handler {
    public ThrowingConstructor() {
        System.out.println("about to fail");
        throw new IllegalStateException("no database");
    }

    @Override
    public Response handle(Request request) {
        return Response.ok();
    }
}
