package io.pagedkv.cli;

import io.pagedkv.Device;
import io.pagedkv.KvDtype;
import io.pagedkv.replay.SchedulePolicy;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Locale;
import picocli.CommandLine;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.TypeConversionException;

/**
 * Turns option text into values, with messages that say what was expected and what was given;
 * {@link Main} prefixes them with the option's name ({@code --batch needs an integer, got 'two'}).
 * The range checks run after parsing, when the option's bounds are known.
 */
final class OptionValues {
    private OptionValues() {}

    /** Registers the converters every command uses for its numeric options. */
    static CommandLine registerNumberConverters(CommandLine commandLine) {
        return commandLine
                .registerConverter(Integer.class, OptionValues::toInt)
                .registerConverter(Integer.TYPE, OptionValues::toInt)
                .registerConverter(Long.class, OptionValues::toLong)
                .registerConverter(Long.TYPE, OptionValues::toLong)
                .registerConverter(Double.class, OptionValues::toDouble)
                .registerConverter(Double.TYPE, OptionValues::toDouble);
    }

    static int toInt(String text) {
        return (int) integer(text, Integer.MIN_VALUE, Integer.MAX_VALUE);
    }

    static long toLong(String text) {
        return integer(text, Long.MIN_VALUE, Long.MAX_VALUE);
    }

    private static long integer(String text, long min, long max) {
        BigInteger value;
        try {
            value = new BigInteger(text.trim());
        } catch (NumberFormatException e) {
            throw new TypeConversionException("needs an integer, got '" + text + "'");
        }
        if (value.compareTo(BigInteger.valueOf(max)) > 0) {
            throw new TypeConversionException(text.trim() + " is out of range (at most " + max + ")");
        }
        if (value.compareTo(BigInteger.valueOf(min)) < 0) {
            throw new TypeConversionException(text.trim() + " is out of range (at least " + min + ")");
        }
        return value.longValue();
    }

    private static final java.util.regex.Pattern BYTE_SIZE =
            java.util.regex.Pattern.compile("(?i)\\s*(\\d+)\\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\\s*");

    /** Whether {@code text} reads as a byte size (a number with an optional unit). */
    static boolean looksLikeByteSize(String text) {
        return BYTE_SIZE.matcher(text).matches();
    }

    /**
     * A byte size like {@code 512MiB}, {@code 2GiB}, {@code 1g} or {@code 4096} (units are powers of
     * 1024; K/M/G/T with or without "iB"/"B"), at least 1 byte.
     */
    static long byteSize(CommandLine commandLine, String option, String text) {
        var m = BYTE_SIZE.matcher(text);
        if (!m.matches())
            throw new ParameterException(commandLine, option + " needs a size like 512MiB or 2GiB, got '" + text + "'");
        String unit = m.group(2) == null ? "b" : m.group(2).toLowerCase(Locale.ROOT);
        int shift = switch (unit.charAt(0)) {
            case 'k' -> 10;
            case 'm' -> 20;
            case 'g' -> 30;
            case 't' -> 40;
            default -> 0;
        };
        BigInteger value = new BigInteger(m.group(1)).shiftLeft(shift);
        if (value.signum() <= 0 || value.bitLength() > 62)
            throw new ParameterException(commandLine, option + " must be at least 1 byte and below 2^62, got '" + text + "'");
        return value.longValue();
    }

    static double toDouble(String text) {
        try {
            double d = Double.parseDouble(text.trim());
            if (Double.isFinite(d)) return d;
        } catch (NumberFormatException e) {
            // the message below
        }
        throw new TypeConversionException("needs a number, got '" + text + "'");
    }

    /** {@code f32|f16|bf16|fp8|q8|q6|q4} (also fp32, float32, fp8_e4m3, ...). */
    static final class KvDtypeConverter implements ITypeConverter<KvDtype> {
        @Override
        public KvDtype convert(String text) {
            return switch (text.trim().toLowerCase(Locale.ROOT)) {
                case "f32", "fp32", "float32" -> KvDtype.F32;
                case "f16", "fp16", "float16" -> KvDtype.F16;
                case "bf16", "bfloat16" -> KvDtype.BF16;
                case "fp8", "fp8_e4m3", "e4m3" -> KvDtype.FP8_E4M3;
                case "q8" -> KvDtype.Q8;
                case "q6" -> KvDtype.Q6;
                case "q4" -> KvDtype.Q4;
                default -> throw new TypeConversionException("must be f32, f16, bf16, fp8, q8, q6 or q4, got '" + text + "'");
            };
        }
    }

    /** {@code cpu}, {@code cuda} (device 0) or {@code cuda:N}. */
    static final class DeviceConverter implements ITypeConverter<Device> {
        @Override
        public Device convert(String text) {
            String s = text.trim().toLowerCase(Locale.ROOT);
            if (s.equals("cpu")) return Device.cpu();
            if (s.equals("cuda") || s.equals("gpu")) return Device.cuda(0);
            if (s.startsWith("cuda:")) {
                try {
                    int index = Integer.parseInt(s.substring(5));
                    if (index >= 0) return Device.cuda(index);
                } catch (NumberFormatException ignored) {
                    // the message below
                }
            }
            throw new TypeConversionException("must be cpu, cuda or cuda:N, got '" + text + "'");
        }
    }

    /** {@code fcfs} or {@code lpm}. */
    static final class ScheduleConverter implements ITypeConverter<SchedulePolicy> {
        @Override
        public SchedulePolicy convert(String text) {
            return switch (text.trim().toLowerCase(Locale.ROOT)) {
                case "fcfs" -> SchedulePolicy.FCFS;
                case "lpm" -> SchedulePolicy.LPM;
                default -> throw new TypeConversionException("must be fcfs or lpm, got '" + text + "'");
            };
        }
    }

    /** {@code value} if it lies in [min, max], else a usage error naming the option and the range. */
    static int inRange(CommandLine commandLine, String option, int value, int min, int max) {
        if (value < min || value > max) {
            throw new ParameterException(commandLine, option + " " + value + " is out of range [" + min + ", " + max + "]");
        }
        return value;
    }

    /** {@code value} if {@code ok}, else a usage error: "{@code option} must be {@code rule}, got value". */
    static double require(CommandLine commandLine, String option, double value, boolean ok, String rule) {
        if (!ok) {
            String shown = BigDecimal.valueOf(value).stripTrailingZeros().toPlainString();
            throw new ParameterException(commandLine, option + " must be " + rule + ", got " + shown);
        }
        return value;
    }
}
