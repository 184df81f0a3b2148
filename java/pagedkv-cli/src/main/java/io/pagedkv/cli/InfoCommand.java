package io.pagedkv.cli;

import io.pagedkv.Backend;
import io.pagedkv.Device;
import io.pagedkv.PagedKvCache;
import io.pagedkv.PagedKvException;
import java.io.PrintStream;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;

/** {@code pagedkv info}: the library's version, the backends it can run and the devices found. */
@Command(name = "info", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        header = "version, backends and devices of the native library",
        description = {"Prints the native library's version and where it was loaded from, the backends it can run"
                + " on this machine (CPU kernels, AVX2/AVX-512, CUDA) and the devices it found."},
        footer = {"", Main.EXIT_STATUS})
final class InfoCommand implements Callable<Integer> {
    private final Main.Streams streams;

    InfoCommand(Main.Streams streams) {
        this.streams = streams;
    }

    @Override
    public Integer call() {
        PrintStream out = streams.out();
        out.println("pagedkv " + PagedKvCache.versionString() + " (library: " + PagedKvCache.libraryLocation() + ")");
        Set<Backend> backends = PagedKvCache.backends();
        out.println("backends: " + backends.stream().map(b -> b.name().toLowerCase(Locale.ROOT).replace('_', '-'))
                .collect(Collectors.joining(", ")));
        out.println("cpu: " + PagedKvCache.describeDevice(Device.cpu()).replaceFirst("^cpu:\\s*", ""));
        int gpus = PagedKvCache.cudaDeviceCount();
        if (gpus == 0) {
            out.println("cuda: " + (backends.contains(Backend.CUDA_BUILT)
                    ? "built in; " + noDeviceReason()
                    : "not built in (no nvcc at build time)"));
        }
        for (int i = 0; i < gpus; i++) out.println(PagedKvCache.describeDevice(Device.cuda(i)));
        out.println("java: " + System.getProperty("java.runtime.version") + " (" + System.getProperty("java.vendor") + ")");
        return Main.OK;
    }

    /** The library's reason for finding no device, in words first ("no NVIDIA driver found (...)"). */
    private static String noDeviceReason() {
        try {
            PagedKvCache.describeDevice(Device.cuda(0));
            return "device 0 answers but is not usable";
        } catch (PagedKvException e) {
            return e.getMessage().replaceFirst("^pagedkv_device_describe: ", "");
        }
    }
}
