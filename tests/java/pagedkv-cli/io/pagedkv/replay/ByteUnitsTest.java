package io.pagedkv.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ByteUnitsTest {
    @ParameterizedTest
    @CsvSource({"0, 0 B", "1023, 1023 B", "1024, 1.00 KiB", "1536, 1.50 KiB", "33554432, 32.0 MiB",
            "1073741824, 1.00 GiB", "107374182400, 100 GiB", "9223372036854775807, 8.00 EiB"})
    void examples(long bytes, String expected) {
        assertEquals(expected, ByteUnits.format(bytes));
    }

    /** Random counts of every magnitude: the number shown times its unit is the count, to 3 significant digits. */
    @Test
    void randomCountsReadBackWithinRounding() {
        Random random = new Random(7);
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        for (int i = 0; i < 10_000; i++) {
            long bytes = (random.nextLong() >>> 1) >>> random.nextInt(63);
            String[] shown = ByteUnits.format(bytes).split(" ");
            int unit = java.util.Arrays.asList(units).indexOf(shown[1]);
            BigDecimal scale = BigDecimal.valueOf(1024).pow(unit);
            BigDecimal exact = new BigDecimal(bytes).divide(scale, 10, RoundingMode.HALF_EVEN);
            assertTrue(unit == 0 || exact.compareTo(BigDecimal.ONE) >= 0, bytes + " -> " + shown[0] + " " + shown[1]);
            assertTrue(exact.compareTo(BigDecimal.valueOf(1024)) < 0, bytes + " -> " + shown[0] + " " + shown[1]);
            double relative = Math.abs(new BigDecimal(shown[0]).subtract(exact).doubleValue()) / exact.max(BigDecimal.ONE).doubleValue();
            assertTrue(relative <= 0.005, bytes + " -> " + shown[0] + " " + shown[1]);
        }
    }

    @Test
    void negativeCountsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> ByteUnits.format(-1));
    }
}
