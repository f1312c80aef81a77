import hotfn.Handler;
import hotfn.Request;
import hotfn.Response;
import mini.Application;

/**
 * Benchmark function, "framework style": the same echo / sum behaviour as echo-java, behind a
 * small dependency-injection framework whose start-up does what real JVM frameworks do before
 * they can serve: generate and compile component classes, load and initialise them, scan their
 * annotations, wire them by constructor injection, wrap each in a dynamic proxy, and build a
 * large configuration graph. All of it runs in the constructor, before the ready frame; see
 * mini/Application.java. No network, no downloads: the JRE's own compiler does the generating.
 */
public class Func implements Handler {
    private final Application app;

    public Func() throws Exception {
        app = Application.boot(Integer.parseInt(System.getenv().getOrDefault("FRAMEWORK_COMPONENTS", "80")));
    }

    @Override
    public Response handle(Request request) {
        return app.dispatch(request);
    }
}
