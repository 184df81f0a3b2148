package io.pagedkv.cli;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A small command-line parser: {@code --flag}, {@code --option value} and {@code --option=value},
 * positional arguments, {@code --} ending options. Unknown options, missing values and values
 * given to flags are {@link UsageException}s. Later occurrences of an option override earlier ones,
 * except for repeatable options whose values accumulate. Not thread-safe.
 */
final class Args {
    private final Map<String, List<String>> values = new HashMap<>();
    private final List<String> positional = new ArrayList<>();

    /**
     * @param flags   options without a value
     * @param options options with a value
     */
    Args(String[] args, Set<String> flags, Set<String> options) {
        boolean onlyPositional = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (onlyPositional || !a.startsWith("--") || a.equals("-")) {
                if (!onlyPositional && a.startsWith("-") && a.length() > 1 && !a.equals("-")) {
                    throw new UsageException("unknown option " + a + " (options start with --)");
                }
                positional.add(a);
                continue;
            }
            if (a.equals("--")) {
                onlyPositional = true;
                continue;
            }
            int eq = a.indexOf('=');
            String name = eq < 0 ? a.substring(2) : a.substring(2, eq);
            if (flags.contains(name)) {
                if (eq >= 0) throw new UsageException("--" + name + " takes no value");
                values.computeIfAbsent(name, k -> new ArrayList<>()).add("");
            } else if (options.contains(name)) {
                String value;
                if (eq >= 0) {
                    value = a.substring(eq + 1);
                } else if (i + 1 < args.length) {
                    value = args[++i];
                } else {
                    throw new UsageException("--" + name + " needs a value");
                }
                values.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
            } else {
                throw new UsageException("unknown option --" + name);
            }
        }
    }

    boolean flag(String name) {
        return values.containsKey(name);
    }

    boolean has(String name) {
        return values.containsKey(name);
    }

    /** The last value given, or null. */
    String value(String name) {
        List<String> v = values.get(name);
        return v == null ? null : v.get(v.size() - 1);
    }

    /** Every value given, in order. */
    List<String> all(String name) {
        return values.getOrDefault(name, List.of());
    }

    List<String> positional() {
        return positional;
    }

    int intValue(String name, int defaultValue, int min, int max) {
        String v = value(name);
        if (v == null) return defaultValue;
        try {
            int n = Integer.parseInt(v.trim());
            if (n < min || n > max) throw new UsageException("--" + name + " must be in [" + min + ", " + max + "], got " + v);
            return n;
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " needs an integer, got '" + v + "'");
        }
    }

    long longValue(String name, long defaultValue) {
        String v = value(name);
        if (v == null) return defaultValue;
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " needs an integer, got '" + v + "'");
        }
    }

    double doubleValue(String name, double defaultValue) {
        String v = value(name);
        if (v == null) return defaultValue;
        try {
            double d = Double.parseDouble(v.trim());
            if (!Double.isFinite(d)) throw new NumberFormatException();
            return d;
        } catch (NumberFormatException e) {
            throw new UsageException("--" + name + " needs a number, got '" + v + "'");
        }
    }
}
