package io.pagedkv.replay;

import java.util.Locale;

/** Byte counts for people: {@code 512 B}, {@code 1.5 KiB}, {@code 32.0 MiB}, {@code 2.00 GiB}. Thread-safe. */
public final class ByteUnits {
    private static final String[] UNITS = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

    private ByteUnits() {}

    /** {@code bytes} in the largest binary unit that keeps the number at least 1, three significant digits. */
    public static String format(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative byte count " + bytes);
        if (bytes < 1024) return bytes + " B";
        double value = bytes;
        int unit = -1;
        while (value >= 1024 && unit < UNITS.length - 1) {
            value /= 1024;
            unit++;
        }
        String digits = value >= 100 ? "%.0f %s" : value >= 10 ? "%.1f %s" : "%.2f %s";
        return String.format(Locale.ROOT, digits, value, UNITS[unit]);
    }
}
