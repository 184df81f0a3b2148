package io.pagedkv.cli;

import io.pagedkv.Backend;
import io.pagedkv.Device;
import io.pagedkv.PagedKvCache;
import io.pagedkv.PagedKvException;
import java.io.PrintStream;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;

/** {@code pagedkv info}: the library's version, the backends it can run and the devices found. */
final class InfoCommand {
    private static final String HELP = """
            Usage: pagedkv info
            Prints the native library's version and where it was loaded from, the backends it can run
            on this machine (CPU kernels, AVX2/AVX-512, CUDA) and the devices it found.
            """;

    private final PrintStream out;

    InfoCommand(PrintStream out) {
        this.out = out;
    }

    int run(String[] args) {
        for (String a : args) {
            if (a.equals("--help") || a.equals("-h")) {
                out.print(HELP);
                return Main.OK;
            }
            if (!a.equals("--debug")) throw new UsageException("info takes no arguments, got '" + a + "'");
        }
        out.println("pagedkv " + PagedKvCache.versionString() + " (library: " + PagedKvCache.libraryLocation() + ")");
        Set<Backend> backends = PagedKvCache.backends();
        out.println("backends: " + backends.stream().map(b -> b.name().toLowerCase(Locale.ROOT).replace('_', '-'))
                .collect(Collectors.joining(", ")));
        out.println("cpu: " + PagedKvCache.describeDevice(Device.cpu()).replaceFirst("^cpu:\\s*", ""));
        int gpus = PagedKvCache.cudaDeviceCount();
        if (gpus == 0) {
            out.println("cuda: " + (backends.contains(Backend.CUDA_BUILT)
                    ? "built in, no CUDA device found (" + noDeviceReason() + ")"
                    : "not built in (no nvcc at build time)"));
        }
        for (int i = 0; i < gpus; i++) out.println(PagedKvCache.describeDevice(Device.cuda(i)));
        out.println("java: " + System.getProperty("java.runtime.version") + " (" + System.getProperty("java.vendor") + ")");
        return Main.OK;
    }

    /** The library's reason for finding no device (no driver, no GPU...). */
    private static String noDeviceReason() {
        try {
            PagedKvCache.describeDevice(Device.cuda(0));
            return "device 0 answers but is not usable";
        } catch (PagedKvException e) {
            return e.getMessage().replaceFirst("^pagedkv_device_describe: ", "");
        }
    }
}
