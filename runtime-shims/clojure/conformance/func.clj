(ns func
  "The conformance function (docs/runtimes.md), written with the Clojure shim."
  (:require [clojure.string :as str]))

(defn- header
  "The first value of request header `name` (names arrive lower case), or nil."
  [request name]
  (some (fn [[k v]] (when (= k name) v)) (:headers request)))

(defn- echo [request]
  {:status 200
   :headers (into [["x-method" (:method request)]
                   ["x-call-id" (:call-id request)]]
                  (filter (fn [[k _]] (str/starts-with? k "x-echo-")))
                  (:headers request))
   :body (:body request)})

(defn- json-str [^String s]
  (let [sb (StringBuilder. "\"")]
    (doseq [c s]
      (case c
        \" (.append sb "\\\"")
        \\ (.append sb "\\\\")
        \newline (.append sb "\\n")
        \return (.append sb "\\r")
        \tab (.append sb "\\t")
        (if (< (int c) 0x20)
          (.append sb (format "\\u%04x" (int c)))
          (.append sb c))))
    (str (.append sb "\""))))

(defn- json
  "Enough JSON for `info`: maps, sequences, strings, integers and nil."
  [x]
  (cond
    (nil? x) "null"
    (string? x) (json-str x)
    (integer? x) (str x)
    (map? x) (str "{" (str/join "," (for [[k v] x] (str (json-str (name k)) ":" (json v)))) "}")
    (sequential? x) (str "[" (str/join "," (map json x)) "]")
    :else (throw (IllegalArgumentException. (str "no JSON for " (type x))))))

(defn- info [request]
  {:status 200
   :headers {"content-type" "application/json"}
   :body (json (array-map
                 :method (:method request)
                 :url (:url request)
                 :path (:path request)
                 :query (:query request)
                 :headers (:headers request)
                 :app (:app request)
                 :route (:route request)
                 :params (:params request)
                 :call_id (:call-id request)
                 :deadline (:deadline request)
                 :body_length (alength ^bytes (:body request))
                 :config_value (System/getenv "CONFORMANCE_CONFIG")))})

(defn handler [request]
  (case (or (header request "x-hotfn-test") "echo")
    "status" {:status (Long/parseLong (str/trim (header request "x-status")))
              :headers {"x-custom" "yes"}
              :body "status"}
    "raise" (throw (RuntimeException. "boom"))
    "print" (do (println "noise") (echo request))
    "stderr" (do (binding [*out* *err*] (println "log line")) (echo request))
    "sleep" (do (Thread/sleep (Long/parseLong (or (header request "x-sleep-ms") "0"))) (echo request))
    "exit" (.halt (Runtime/getRuntime) 3)
    "info" (info request)
    (echo request)))
