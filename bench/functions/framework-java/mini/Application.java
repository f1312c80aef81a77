package mini;

import hotfn.Request;
import hotfn.Response;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Parameter;
import java.lang.reflect.Proxy;
import java.net.URI;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import javax.tools.FileObject;
import javax.tools.ForwardingJavaFileManager;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

/**
 * A miniature dependency-injection framework, so that the benchmark has a JVM function whose
 * start-up looks like a real framework's rather than a hello-world's. {@link #boot} does, in
 * order, and all before the ready frame:
 *
 * <ol>
 *   <li>generates the Java source of {@code n} components and their interfaces (as templating,
 *       JSP, rule engines and ORMs generate code);</li>
 *   <li>compiles them in memory with the JRE's own compiler (jdk.compiler);</li>
 *   <li>loads and initialises every class (static initialisers build lookup tables), and
 *       scans their annotations for components, as classpath scanning does;</li>
 *   <li>instantiates them in dependency order by reflective constructor injection;</li>
 *   <li>wraps each in a {@link Proxy} of its own interface (one generated proxy class each),
 *       with an interceptor counting calls, as AOP does;</li>
 *   <li>runs every component's {@code init} through its proxy (lambdas and streams: hidden
 *       classes spun by LambdaMetafactory);</li>
 *   <li>builds and binds a large configuration object graph.</li>
 * </ol>
 */
public final class Application {
    private final List<Stage> pipeline;
    private final Map<String, Object> registry;
    private long checksum;

    private Application(List<Stage> pipeline, Map<String, Object> registry, long checksum) {
        this.pipeline = pipeline;
        this.registry = registry;
        this.checksum = checksum;
    }

    /** Per call: a few proxied stages, then the function proper (echo, or sum with x-bench). */
    public Response dispatch(Request request) {
        long v = request.body().length;
        for (Stage stage : pipeline) v = stage.apply(v);
        checksum ^= v;
        if ("sum".equals(request.header("x-bench", ""))) {
            return Response.ok(Double.toString(JsonSum.sum(request.body())));
        }
        return Response.ok(request.body());
    }

    public static Application boot(int n) throws Exception {
        long t0 = System.nanoTime();
        Map<String, String> sources = generate(n);
        long t1 = System.nanoTime();
        Map<String, byte[]> classes = compile(sources);
        long t2 = System.nanoTime();
        MemoryClassLoader loader = new MemoryClassLoader(classes, Application.class.getClassLoader());
        List<Class<?>> components = scan(loader, classes.keySet());
        long t3 = System.nanoTime();
        Map<String, Stage> beans = wire(components);
        long t4 = System.nanoTime();
        Map<String, Object> registry = new LinkedHashMap<>();
        for (Stage bean : beans.values()) bean.init(registry);
        long t5 = System.nanoTime();
        long checksum = configure(beans, n);
        long t6 = System.nanoTime();
        List<Stage> pipeline = new ArrayList<>(beans.values()).subList(0, Math.min(8, beans.size()));
        System.err.printf("mini: %d components, %d classes compiled, %d proxies in %d ms "
                + "(generate %d, compile %d, load+scan %d, wire %d, init %d, configure %d)%n",
                components.size(), classes.size(), beans.size(), ms(t6 - t0), ms(t1 - t0), ms(t2 - t1),
                ms(t3 - t2), ms(t4 - t3), ms(t5 - t4), ms(t6 - t5));
        return new Application(pipeline, registry, checksum);
    }

    private static long ms(long nanos) {
        return nanos / 1_000_000;
    }

    // -- 1. code generation ------------------------------------------------------------------

    static Map<String, String> generate(int n) {
        Map<String, String> out = new LinkedHashMap<>();
        for (int k = 0; k < n; k++) {
            out.put("gen.Service" + k + "Api", "package gen;\n"
                    + "public interface Service" + k + "Api extends mini.Stage {\n"
                    + "    String describe();\n"
                    + "    java.util.Map<String, java.util.List<Integer>> report();\n"
                    + "}\n");
            out.put("gen.Service" + k, component(k));
        }
        return out;
    }

    private static String component(int k) {
        StringBuilder s = new StringBuilder(4096);
        s.append("package gen;\n")
         .append("import java.util.*;\nimport java.util.function.*;\nimport java.util.stream.*;\nimport mini.*;\n")
         .append("@Component(name = \"service").append(k).append("\", order = ").append(k).append(")\n")
         .append("public final class Service").append(k).append(" implements Service").append(k).append("Api {\n")
         .append("    private static final long[] TABLE = new long[512];\n")
         .append("    private static final Map<String, Integer> CODES = new HashMap<>();\n")
         .append("    static {\n")
         .append("        long x = ").append(k + 1).append("L * 0x9E3779B97F4A7C15L;\n")
         .append("        for (int i = 0; i < TABLE.length; i++) { x ^= x << 13; x ^= x >>> 7; x ^= x << 17; TABLE[i] = x; }\n")
         .append("        for (int i = 0; i < 64; i++) CODES.put(\"code-").append(k).append("-\" + i, i * ").append(k + 1).append(");\n")
         .append("    }\n")
         .append("    private final List<Stage> deps = new ArrayList<>();\n")
         .append("    private final List<LongUnaryOperator> rules = new ArrayList<>();\n")
         .append("    @Inject\n    public Service").append(k).append("(");
        if (k >= 2) {
            s.append("@Named(\"service").append(k - 1).append("\") Stage previous, ")
             .append("@Named(\"service").append(k / 2).append("\") Stage half");
        }
        s.append(") {\n");
        if (k >= 2) s.append("        deps.add(previous);\n        deps.add(half);\n");
        s.append("    }\n")
         .append("    @Override public void init(Map<String, Object> registry) {\n")
         .append("        rules.add(v -> v ^ TABLE[(int) (v & 511)]);\n")
         .append("        rules.add(v -> v + CODES.size());\n")
         .append("        rules.add(v -> Long.rotateLeft(v, ").append(k % 63 + 1).append("));\n")
         .append("        registry.put(\"service").append(k).append("\", describe());\n")
         .append("        registry.put(\"service").append(k).append(".report\", report());\n")
         .append("    }\n")
         .append("    @Override public long apply(long v) {\n")
         .append("        for (LongUnaryOperator rule : rules) v = rule.applyAsLong(v);\n")
         .append("        return v;\n    }\n")
         .append("    @Override public String describe() {\n")
         .append("        String kind;\n")
         .append("        switch (\"k\" + (").append(k).append(" % 5)) {\n")
         .append("            case \"k0\": kind = \"repository\"; break;\n")
         .append("            case \"k1\": kind = \"service\"; break;\n")
         .append("            case \"k2\": kind = \"controller\"; break;\n")
         .append("            case \"k3\": kind = \"filter\"; break;\n")
         .append("            default: kind = \"listener\";\n")
         .append("        }\n")
         .append("        return deps.stream().map(d -> d.getClass().getSimpleName())\n")
         .append("            .collect(Collectors.joining(\", \", kind + \" service").append(k).append(" <- [\", \"]\"));\n")
         .append("    }\n")
         .append("    @Override public Map<String, List<Integer>> report() {\n")
         .append("        return CODES.entrySet().stream()\n")
         .append("            .filter(e -> e.getValue() % 3 == 0)\n")
         .append("            .sorted(Map.Entry.comparingByValue())\n")
         .append("            .collect(Collectors.groupingBy(e -> e.getKey().substring(0, e.getKey().lastIndexOf('-')),\n")
         .append("                TreeMap::new, Collectors.mapping(Map.Entry::getValue, Collectors.toList())));\n")
         .append("    }\n")
         .append("}\n");
        return s.toString();
    }

    // -- 2. compilation in memory ------------------------------------------------------------

    static Map<String, byte[]> compile(Map<String, String> sources) {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) throw new IllegalStateException("no Java compiler in this runtime (jdk.compiler)");
        List<JavaFileObject> units = new ArrayList<>();
        for (Map.Entry<String, String> e : sources.entrySet()) units.add(new Source(e.getKey(), e.getValue()));
        StandardJavaFileManager standard = javac.getStandardFileManager(null, null, null);
        MemoryFileManager files = new MemoryFileManager(standard);
        List<String> options = Arrays.asList("-classpath", System.getProperty("java.class.path"),
                "-proc:none", "-g:none", "-XDstringConcat=inline", "-Xlint:none", "-nowarn");
        ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
        java.io.Writer err = new java.io.OutputStreamWriter(diagnostics);
        Boolean ok = javac.getTask(err, files, null, options, null, units).call();
        if (!ok) throw new IllegalStateException("generated code did not compile:\n" + diagnostics);
        Map<String, byte[]> out = new HashMap<>();
        for (Map.Entry<String, ByteArrayOutputStream> e : files.classes.entrySet()) out.put(e.getKey(), e.getValue().toByteArray());
        return out;
    }

    private static final class Source extends SimpleJavaFileObject {
        private final String code;

        Source(String className, String code) {
            super(URI.create("string:///" + className.replace('.', '/') + Kind.SOURCE.extension), Kind.SOURCE);
            this.code = code;
        }

        @Override
        public CharSequence getCharContent(boolean ignoreEncodingErrors) {
            return code;
        }
    }

    private static final class MemoryFileManager extends ForwardingJavaFileManager<StandardJavaFileManager> {
        final Map<String, ByteArrayOutputStream> classes = new HashMap<>();

        MemoryFileManager(StandardJavaFileManager standard) {
            super(standard);
        }

        @Override
        public JavaFileObject getJavaFileForOutput(Location location, String className, JavaFileObject.Kind kind,
                                                   FileObject sibling) {
            URI uri = URI.create("mem:///" + className.replace('.', '/') + kind.extension);
            return new SimpleJavaFileObject(uri, kind) {
                @Override
                public OutputStream openOutputStream() {
                    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                    classes.put(className, bytes);
                    return bytes;
                }
            };
        }
    }

    private static final class MemoryClassLoader extends ClassLoader {
        private final Map<String, byte[]> classes;

        MemoryClassLoader(Map<String, byte[]> classes, ClassLoader parent) {
            super(parent);
            this.classes = classes;
        }

        @Override
        protected Class<?> findClass(String name) throws ClassNotFoundException {
            byte[] bytes = classes.get(name);
            if (bytes == null) throw new ClassNotFoundException(name);
            return defineClass(name, bytes, 0, bytes.length);
        }
    }

    // -- 3. loading and scanning -------------------------------------------------------------

    static List<Class<?>> scan(ClassLoader loader, Iterable<String> names) throws ClassNotFoundException {
        List<Class<?>> found = new ArrayList<>();
        for (String name : names) {
            Class<?> cls = Class.forName(name, true, loader); // runs the static initialisers
            if (cls.isAnnotationPresent(Component.class)) found.add(cls);
        }
        found.sort((a, b) -> Integer.compare(a.getAnnotation(Component.class).order(),
                                             b.getAnnotation(Component.class).order()));
        return found;
    }

    // -- 4 and 5. wiring and proxies ---------------------------------------------------------

    static Map<String, Stage> wire(List<Class<?>> components) throws ReflectiveOperationException {
        Map<String, Stage> beans = new LinkedHashMap<>();
        for (Class<?> cls : components) {
            Constructor<?> constructor = null;
            for (Constructor<?> c : cls.getConstructors()) {
                if (c.isAnnotationPresent(Inject.class)) constructor = c;
            }
            if (constructor == null) throw new IllegalStateException(cls + " has no @Inject constructor");
            Parameter[] parameters = constructor.getParameters();
            Object[] args = new Object[parameters.length];
            for (int i = 0; i < parameters.length; i++) {
                String wanted = parameters[i].getAnnotation(Named.class).value();
                args[i] = beans.get(wanted);
                if (args[i] == null) throw new IllegalStateException(cls + " needs missing bean " + wanted);
            }
            Object target = constructor.newInstance(args);
            Class<?> api = cls.getInterfaces()[0];
            Stage proxy = (Stage) Proxy.newProxyInstance(cls.getClassLoader(), new Class<?>[] {api},
                    new Interceptor(target));
            beans.put(cls.getAnnotation(Component.class).name(), proxy);
        }
        return beans;
    }

    /** Counts calls per method and delegates: what an AOP metrics aspect does. */
    private static final class Interceptor implements InvocationHandler {
        private final Object target;
        private final Map<String, long[]> calls = new HashMap<>();

        Interceptor(Object target) {
            this.target = target;
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            calls.computeIfAbsent(method.getName(), k -> new long[1])[0]++;
            try {
                return method.invoke(target, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        }
    }

    // -- 7. configuration graph --------------------------------------------------------------

    static long configure(Map<String, Stage> beans, int n) {
        // A properties tree like a large application.yml after placeholder resolution.
        Map<String, Map<String, List<Integer>>> tree = new TreeMap<>();
        for (int section = 0; section < 4 * n; section++) {
            Map<String, List<Integer>> keys = new HashMap<>();
            for (int key = 0; key < 40; key++) {
                List<Integer> values = new ArrayList<>(16);
                for (int v = 0; v < 16; v++) values.add(section * 1000 + key * 16 + v);
                keys.put("key." + key, values);
            }
            tree.put("section." + section, keys);
        }
        long checksum = 0;
        int i = 0;
        for (Stage bean : beans.values()) {
            Map<String, List<Integer>> bound = tree.get("section." + (i++ % tree.size()));
            for (List<Integer> values : bound.values()) checksum = bean.apply(checksum + values.get(values.size() - 1));
        }
        return checksum;
    }
}
