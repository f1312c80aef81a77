(ns testfn
  "Handlers for the Clojure shim's host tests (tests/hotfn/ClojureTestMain.java), by x-test header.")

(println "testfn loading") ; before the ready frame: must land on stderr

(defn- header [request name]
  (some (fn [[k v]] (when (= k name) v)) (:headers request)))

(defn handler [request]
  (case (header request "x-test")
    "string" "h\u00e9llo"
    "bytes" (byte-array [0 1 2 255])
    "nil" nil
    "keyword-headers" {:status 201 :headers {:x-a "1" "x-b" 2} :body "created"}
    "ring-headers" {:headers {"set-cookie" ["a=1" "b=2"]}}
    "pair-headers" {:status 202 :headers [["x-a" "1"] ["x-a" "2"]] :body (byte-array [7])}
    "bad-status" {:status "200"}
    "bad-body" {:body 42}
    "bad-return" 42
    "ex-info" (throw (ex-info "boom" {:a 1}))
    "print" (do (print "no newline") (str (keys request)))
    "request" (pr-str (-> request (update :body #(String. ^bytes % "UTF-8"))))
    (str "default " (:method request))))
