import hotfn.Handler;
import hotfn.Request;
import hotfn.Response;

public class Func implements Handler {
    @Override
    public Response handle(Request request) {
        String name = request.queryParam("name");
        if (name == null || name.isEmpty()) name = request.bodyText();
        if (name.isEmpty()) name = "world";
        return Response.ok("Hello, " + name + "!\n");
    }
}
