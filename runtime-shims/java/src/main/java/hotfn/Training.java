package hotfn;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training run for a class-data-sharing archive: {@code java -XX:ArchiveClassesAtExit=X.jsa
 * ... hotfn.Training} loads the handler (HOTFN_HANDLER) and sends it a few synthetic calls through
 * the real hot loop and cold path, in-process, so that every class a real start-up and first call
 * load is in the archive. hotfn/clojure runs it at image build time with a built-in Clojure
 * namespace, never with user code. Exit status 0 when the handler loaded.
 */
public final class Training {
    private Training() {}

    public static void main(String[] args) throws Exception {
        System.setOut(System.err);
        Handler handler = Runtime.load(Runtime.env("HOTFN_HANDLER", "Func"));

        Frames.Writer writer = new Frames.Writer(Frames.DEFAULT_MAX_FRAME_SIZE);
        ByteArrayOutputStream frames = new ByteArrayOutputStream();
        for (int i = 0; i < 3; i++) {
            Map<String, Object> f = new LinkedHashMap<>();
            f.put("type", "request");
            f.put("call_id", "training-" + i);
            f.put("method", "POST");
            f.put("url", "http://localhost:8080/r/training/items/7?a=1&b=%C3%A9");
            f.put("path", "/items/7");
            f.put("query", List.of(List.of("a", "1"), List.of("b", "\u00e9")));
            f.put("headers", List.of(List.of("content-type", "text/plain"), List.of("x-training", "\u00e9"),
                    List.of("x-training", "2")));
            f.put("body", ("body " + i).getBytes(StandardCharsets.UTF_8));
            f.put("deadline", System.currentTimeMillis() + 30_000);
            f.put("app", "training");
            f.put("route", "/items/:id");
            f.put("params", Map.of("id", "7"));
            writer.map(f);
            frames.write(writer.bytes(), 0, writer.length());
        }
        int hot = Runtime.serveHot(handler, new ByteArrayInputStream(frames.toByteArray()),
                OutputStream.nullOutputStream(), Frames.DEFAULT_MAX_FRAME_SIZE);
        Map<String, String> env = new LinkedHashMap<>();
        env.put("METHOD", "GET");
        env.put("REQUEST_URL", "http://localhost:8080/r/training/items/7?a=1");
        env.put("APP_NAME", "training");
        env.put("HEADER_ACCEPT", "*/*");
        env.put("PARAM_ID", "7");
        int cold = Runtime.serveCold(handler, env, new ByteArrayInputStream(new byte[1]),
                OutputStream.nullOutputStream());
        System.err.println("hotfn-java: training run done (hot loop " + hot + ", cold call " + cold + ")");
        System.exit(hot);
    }
}
