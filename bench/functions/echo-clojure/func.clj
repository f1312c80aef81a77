(ns func
  "Benchmark function (Clojure): echo the request body; with `x-bench: sum`, parse the body as a
  JSON array of numbers with a hand-written parser and answer their sum (the JIT probe).")

(set! *warn-on-reflection* true)
(set! *unchecked-math* :warn-on-boxed)

(defn- digit? [b] (and (>= (long b) 48) (<= (long b) 57)))

(defn json-sum
  "Sum of a flat JSON array of numbers, scanned byte by byte with primitive loops."
  ^double [^bytes b]
  (let [n (alength b)]
    (loop [i 0 total 0.0]
      (if (>= i n)
        total
        (let [c (aget b i)]
          (cond
            (or (== c 45) (digit? c))
            (let [j (loop [j (inc i)]
                      (if (and (< j n)
                               (let [d (aget b j)]
                                 (or (digit? d) (== d 46) (== d 101) (== d 69) (== d 43) (== d 45))))
                        (recur (inc j))
                        j))]
              (recur j (+ total (Double/parseDouble (String. b (int i) (int (- j i)) "ISO-8859-1")))))

            (or (== c 91) (== c 93) (== c 44) (== c 32) (== c 10) (== c 13) (== c 9))
            (recur (inc i) total)

            :else (throw (IllegalArgumentException. (str "unexpected byte " c " at " i)))))))))

(defn- header [request name]
  (some (fn [[k v]] (when (= k name) v)) (:headers request)))

(defn handler [request]
  (if (= "sum" (header request "x-bench"))
    (str (json-sum (:body request)))
    (:body request)))
