import hotfn.Handler;
import hotfn.Request;
import hotfn.Response;

import java.util.Map;

/** A hot Java function: the JVM starts once per container, not once per request. */
public class Func implements Handler {
    private final String greeting;
    private int calls;

    // Runs once per container, before the ready frame: put expensive set-up here.
    public Func() {
        greeting = System.getenv().getOrDefault("GREETING", "Hello");
    }

    @Override
    public Response handle(Request request) {
        calls++;
        String name = request.queryParam("name");
        if (name == null || name.isEmpty()) name = "world";
        System.out.println("greeting " + name);  // the call's log (stderr)
        if (request.header("accept", "").contains("application/json")) {
            return Response.of(200, Map.of("content-type", "application/json"),
                    "{\"message\": \"" + greeting + ", " + name + "!\", \"calls\": " + calls + "}");
        }
        return Response.ok(greeting + ", " + name + ", from Java (call " + calls + " of this JVM)\n");
    }
}
