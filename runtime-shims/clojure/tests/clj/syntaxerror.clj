(ns syntaxerror)
(defn handler [request] (
