package hotfn.clojure;

import clojure.java.api.Clojure;
import clojure.lang.IFn;
import clojure.lang.IPersistentMap;
import clojure.lang.Keyword;
import clojure.lang.Named;
import clojure.lang.PersistentArrayMap;
import clojure.lang.PersistentHashMap;
import clojure.lang.RT;
import clojure.lang.Var;
import hotfn.Handler;
import hotfn.Request;
import hotfn.Response;

import java.io.IOException;
import java.io.Writer;
import java.util.Collection;
import java.util.List;
import java.util.Map;

/**
 * Serves a Clojure function with the Java runtime: {@code HOTFN_HANDLER=hotfn.clojure.ClojureHandler}
 * (the hotfn/clojure image sets it). The constructor requires the namespace, so Clojure's start-up
 * and the namespace's own loading are paid before the ready frame.
 *
 * <p>{@code HOTFN_CLOJURE_HANDLER} names the function as {@code namespace/var}, default
 * {@code func/handler}. It receives a map
 * {@code {:method :url :path :query :headers :body :call-id :deadline :app :route :params}}
 * ({@code :query} and {@code :headers} vectors of {@code [name value]} vectors, {@code :body} a
 * byte array, {@code :params} a map of string to string) and returns a string, a byte array, nil
 * or a map {@code {:status :headers :body}}.
 */
public final class ClojureHandler implements Handler, hotfn.WarmUp {
    private static final Keyword METHOD = Keyword.intern("method");
    private static final Keyword URL = Keyword.intern("url");
    private static final Keyword PATH = Keyword.intern("path");
    private static final Keyword QUERY = Keyword.intern("query");
    private static final Keyword HEADERS = Keyword.intern("headers");
    private static final Keyword BODY = Keyword.intern("body");
    private static final Keyword CALL_ID = Keyword.intern("call-id");
    private static final Keyword DEADLINE = Keyword.intern("deadline");
    private static final Keyword APP = Keyword.intern("app");
    private static final Keyword ROUTE = Keyword.intern("route");
    private static final Keyword PARAMS = Keyword.intern("params");
    private static final Keyword STATUS = Keyword.intern("status");

    private final IFn handler;

    public ClojureHandler() {
        this(System.getenv("HOTFN_CLOJURE_HANDLER"));
    }

    public ClojureHandler(String spec) {
        if (spec == null || spec.isBlank()) spec = "func/handler";
        int slash = spec.indexOf('/');
        String ns = slash < 0 ? spec : spec.substring(0, slash);
        String name = slash < 0 ? "handler" : spec.substring(slash + 1);
        IFn require = Clojure.var("clojure.core", "require");
        require.invoke(Clojure.read(ns)); // loads func.clj (or its AOT classes): all before the ready frame
        Var var = (Var) Clojure.var(ns, name);
        if (!var.isBound()) {
            throw new IllegalStateException("namespace " + ns + " defines no " + name
                    + " (expected (defn " + name + " [request] ...))");
        }
        if (!(var.deref() instanceof IFn)) {
            throw new IllegalStateException(ns + "/" + name + " is not a function");
        }
        this.handler = var; // calling through the var: a redefinition (REPL, reload) takes effect
        System.setProperty("hotfn.runtime.extra", "clojure/" + clojureVersion());
    }

    private static String clojureVersion() {
        try {
            return String.valueOf(Clojure.var("clojure.core", "clojure-version").invoke());
        } catch (RuntimeException e) {
            return "unknown";
        }
    }

    @Override
    public Response handle(Request request) {
        try {
            return toResponse(handler.invoke(toMap(request)));
        } finally {
            flush(RT.OUT.deref()); // (print "x") without a newline: into this call's log
            flush(RT.ERR.deref());
        }
    }

    /**
     * Before the ready frame: the request map and every kind of return value converted once,
     * without calling the function (it may have side effects).
     */
    @Override
    public void warmUp(Request sample) {
        toMap(sample);
        toResponse(PersistentHashMap.create(STATUS, 200L, HEADERS, RT.vector(RT.vector("x-a", "1")), BODY, "w"));
        toResponse(PersistentHashMap.create(HEADERS, PersistentHashMap.create("x-a", "1"), BODY, new byte[1]));
        toResponse("w");
        toResponse(new byte[1]);
        toResponse(null);
    }

    private static void flush(Object writer) {
        if (writer instanceof Writer) {
            try {
                ((Writer) writer).flush();
            } catch (IOException ignored) {
                // stderr is gone; nothing to tell anyone
            }
        }
    }

    /** The request as the Clojure map the handler receives. */
    static IPersistentMap toMap(Request r) {
        Object[] kvs = {
            METHOD, r.method(),
            URL, r.url(),
            PATH, r.path(),
            QUERY, pairs(r.query()),
            HEADERS, pairs(r.headers()),
            BODY, r.body(),
            CALL_ID, r.callId(),
            DEADLINE, r.deadline(),
            APP, r.app(),
            ROUTE, r.route(),
            PARAMS, params(r.params()),
        };
        return PersistentHashMap.create(kvs);
    }

    private static Object pairs(List<Map.Entry<String, String>> pairs) {
        Object[] out = new Object[pairs.size()];
        for (int i = 0; i < out.length; i++) {
            Map.Entry<String, String> p = pairs.get(i);
            out[i] = RT.vector(p.getKey(), p.getValue());
        }
        return RT.vector(out);
    }

    private static Object params(Map<String, String> params) {
        if (params.isEmpty()) return PersistentArrayMap.EMPTY;
        Object[] kvs = new Object[params.size() * 2];
        int i = 0;
        for (Map.Entry<String, String> p : params.entrySet()) {
            kvs[i++] = p.getKey();
            kvs[i++] = p.getValue();
        }
        return PersistentHashMap.create(kvs);
    }

    /** What the handler returned as a Response: a string, bytes, nil or {:status :headers :body}. */
    static Response toResponse(Object result) {
        if (result == null) return Response.ok();
        if (result instanceof String) return Response.ok((String) result);
        if (result instanceof byte[]) return Response.ok((byte[]) result);
        if (result instanceof Map || result instanceof IPersistentMap) {
            Response response = new Response();
            Object status = RT.get(result, STATUS);
            if (status != null) {
                if (!(status instanceof Number)) {
                    throw new IllegalArgumentException(":status must be a number, not " + describe(status));
                }
                long code = ((Number) status).longValue();
                response.status(code < 0 || code > 999 ? -1 : (int) code); // -1: refused by the runtime
            }
            Object headers = RT.get(result, HEADERS);
            if (headers != null) addHeaders(response, headers);
            Object body = RT.get(result, BODY);
            if (body == null || body instanceof String) response.body((String) body);
            else if (body instanceof byte[]) response.body((byte[]) body);
            else throw new IllegalArgumentException(":body must be a string, bytes or nil, not " + describe(body));
            return response;
        }
        throw new IllegalArgumentException(
                "a handler must return a string, bytes, nil or a map {:status :headers :body}, not " + describe(result));
    }

    /** {"name" "value"}, {:name "value"}, {"set-cookie" ["a" "b"]} or [["name" "value"] ...]. */
    private static void addHeaders(Response response, Object headers) {
        if (headers instanceof Map) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) headers).entrySet()) addHeader(response, e.getKey(), e.getValue());
            return;
        }
        for (Object seq = RT.seq(headers); seq != null; seq = RT.next(seq)) {
            Object pair = RT.first(seq);
            if (pair instanceof Map.Entry) {
                addHeader(response, ((Map.Entry<?, ?>) pair).getKey(), ((Map.Entry<?, ?>) pair).getValue());
            } else if (pair instanceof List && ((List<?>) pair).size() == 2) {
                addHeader(response, ((List<?>) pair).get(0), ((List<?>) pair).get(1));
            } else {
                throw new IllegalArgumentException(":headers must be a map or a sequence of [name value], not "
                        + describe(headers));
            }
        }
    }

    private static void addHeader(Response response, Object name, Object value) {
        String n = name instanceof Named ? ((Named) name).getName() : String.valueOf(name);
        if (value instanceof Collection) {
            for (Object v : (Collection<?>) value) response.header(n, String.valueOf(v));
        } else if (value != null) {
            response.header(n, String.valueOf(value));
        }
    }

    private static String describe(Object o) {
        return o == null ? "nil" : o.getClass().getName();
    }
}
