package mini;

import java.util.Map;

/** What every component is: one stage of the request pipeline, plus start-up hooks. */
public interface Stage {
    /** Runs once after wiring (a @PostConstruct): registers what the component contributes. */
    void init(Map<String, Object> registry);

    /** Per request: a cheap transformation, so that a call passes through proxies and beans. */
    long apply(long value);
}
