(ns func)

(defn handler [request]
  (let [name (some (fn [[k v]] (when (= k "name") v)) (:query request))]
    (str "Hello, " (or name "world") "!\n")))
