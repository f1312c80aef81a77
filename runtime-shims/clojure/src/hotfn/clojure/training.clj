(ns hotfn.clojure.training
  "Run only while hotfn/clojure is built (hotfn.Training): a function much like the ones users
  write, compiled from source and called through the real loop, so that the class-data-sharing
  archive (/opt/hotfn/clojure.jsa) holds the classes a real start-up and first call load."
  (:require [clojure.string :as str]))

(defrecord Item [id name])

(defn- header [request name]
  (some (fn [[k v]] (when (= k name) v)) (:headers request)))

(defn- describe [{:keys [method path query params] :as request}]
  (let [item (->Item (get params "id") (header request "x-training"))]
    (cond-> (format "%s %s %s" method path (str/join "&" (for [[k v] query] (str k "=" v))))
      (:name item) (str " " (:name item))
      :always (str " " (count (:headers request))))))

(defn handler [request]
  (let [body (String. ^bytes (:body request) "UTF-8")]
    (case (last body)
      \1 (throw (ex-info "training error" {:call-id (:call-id request)}))
      \2 (.getBytes (str/upper-case body) "UTF-8")
      {:status 201
       :headers (into [["content-type" "text/plain"]]
                      (filter (fn [[k _]] (str/starts-with? k "x-")))
                      (:headers request))
       :body (->> (describe request) (str/trim) (str body " "))})))
