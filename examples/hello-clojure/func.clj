(ns func
  (:require [clojure.string :as str]))

;; Top-level forms run once per container, before the ready frame: Clojure's slow start is
;; paid once, not per request.
(def calls (atom 0))

(defn- query-param [request name]
  (some (fn [[k v]] (when (= k name) v)) (:query request)))

(defn handler [request]
  (let [n (swap! calls inc)
        name (or (query-param request "name")
                 (not-empty (str/trim (String. ^bytes (:body request) "UTF-8")))
                 "world")]
    (println "greeting" name)                                  ; the call's log (stderr)
    (str "Hello, " name ", from Clojure " (clojure-version) " (call " n " of this JVM)\n")))
