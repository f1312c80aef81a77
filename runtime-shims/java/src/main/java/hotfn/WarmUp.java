package hotfn;

/**
 * Optional, for a {@link Handler}: code the shim runs once before the ready frame, after its own
 * warm-up, so that the first real call does not pay for the first use of the handler's own
 * paths. It gets a synthetic request and must have no side effects (no writes to a database,
 * no calls out): it runs at every container start, and at build time for the class-data-sharing
 * archive. The shim ignores what it throws. hotfn.clojure.ClojureHandler uses it to convert a
 * request and responses between Java and Clojure without calling the function.
 */
public interface WarmUp {
    void warmUp(Request sample) throws Exception;
}
