/** A flat JSON array of numbers, summed by a hand-written scanner (no library). */
final class JsonSum {
    private JsonSum() {}

    private static final double[] POW10 = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
        1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

    static double sum(byte[] b) {
        double total = 0;
        int i = 0;
        final int n = b.length;
        while (i < n) {
            byte c = b[i];
            if (c == '-' || (c >= '0' && c <= '9')) {
                boolean negative = c == '-';
                if (negative) i++;
                long mantissa = 0;
                int scale = 0;
                while (i < n && b[i] >= '0' && b[i] <= '9') mantissa = mantissa * 10 + (b[i++] - '0');
                if (i < n && b[i] == '.') {
                    i++;
                    while (i < n && b[i] >= '0' && b[i] <= '9') {
                        mantissa = mantissa * 10 + (b[i++] - '0');
                        scale++;
                    }
                }
                int exponent = 0;
                if (i < n && (b[i] == 'e' || b[i] == 'E')) {
                    i++;
                    boolean expNegative = false;
                    if (i < n && (b[i] == '+' || b[i] == '-')) expNegative = b[i++] == '-';
                    while (i < n && b[i] >= '0' && b[i] <= '9') exponent = exponent * 10 + (b[i++] - '0');
                    if (expNegative) exponent = -exponent;
                }
                int e = exponent - scale;
                double value = e >= 0 ? mantissa * pow10(e) : mantissa / pow10(-e);
                total += negative ? -value : value;
            } else if (c == '[' || c == ']' || c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                i++;
            } else {
                throw new IllegalArgumentException("unexpected byte " + c + " at " + i);
            }
        }
        return total;
    }

    private static double pow10(int e) {
        return e < POW10.length ? POW10[e] : Math.pow(10, e);
    }
}
