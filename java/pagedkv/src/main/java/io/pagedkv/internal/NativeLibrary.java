package io.pagedkv.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Loads libpagedkv once per JVM, so the generated bindings find its symbols through
 * {@code SymbolLookup.loaderLookup()}. Looks in: the system property {@code pagedkv.library}
 * (a path to the .so), then {@code java.library.path}, then the copy packaged in the jar under
 * {@code /<os>-<arch>/}, extracted to a temporary file. Never falls back silently: on failure the
 * exception lists every place tried and the flags that fix it.
 *
 * <p>Thread-safe: loading happens in the class initializer.
 */
public final class NativeLibrary {
    /** System property naming the library file to load, for development builds. */
    public static final String PATH_PROPERTY = "pagedkv.library";

    private static final String LIBRARY_NAME = "pagedkv";
    private static final String LOADED_FROM = load();

    private NativeLibrary() {}

    /** Ensures the library is loaded; cheap after the first call. */
    public static void ensureLoaded() {
        if (LOADED_FROM == null) throw new IllegalStateException("unreachable: pagedkv not loaded");
    }

    /** Where the library was loaded from, for diagnostics. */
    public static String loadedFrom() {
        return LOADED_FROM;
    }

    /** The platform folder inside the jar, e.g. {@code linux-x86_64}. */
    public static String platformFolder() {
        String os = System.getProperty("os.name").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch").toLowerCase(Locale.ROOT);
        String osName = os.contains("linux") ? "linux" : os.contains("mac") ? "macos" : os.replace(' ', '_');
        String archName = arch.equals("amd64") || arch.equals("x86_64") ? "x86_64"
                : arch.equals("aarch64") || arch.equals("arm64") ? "aarch64" : arch;
        return osName + "-" + archName;
    }

    private static String load() {
        List<String> tried = new ArrayList<>();
        String explicit = System.getProperty(PATH_PROPERTY);
        if (explicit != null && !explicit.isBlank()) {
            Path path = Path.of(explicit).toAbsolutePath();
            try {
                System.load(path.toString());
                return path.toString();
            } catch (UnsatisfiedLinkError e) {
                // An explicit request that fails is an error, not a reason to pick another copy.
                throw failure(List.of("-D" + PATH_PROPERTY + "=" + path + ": " + e.getMessage()), e);
            }
        }
        try {
            System.loadLibrary(LIBRARY_NAME);
            return "java.library.path";
        } catch (UnsatisfiedLinkError e) {
            tried.add("java.library.path (" + System.getProperty("java.library.path") + "): " + e.getMessage());
        }
        String resource = "/" + platformFolder() + "/" + System.mapLibraryName(LIBRARY_NAME);
        try (InputStream in = NativeLibrary.class.getResourceAsStream(resource)) {
            if (in == null) {
                tried.add("classpath resource " + resource + ": not packaged for this platform");
            } else {
                Path file = Files.createTempFile("libpagedkv-", ".so");
                file.toFile().deleteOnExit();
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                System.load(file.toString());
                return "jar:" + resource;
            }
        } catch (IOException | UnsatisfiedLinkError e) {
            tried.add("classpath resource " + resource + ": " + e.getMessage());
        }
        throw failure(tried, null);
    }

    private static UnsatisfiedLinkError failure(List<String> tried, Throwable cause) {
        StringBuilder message = new StringBuilder("could not load the pagedkv native library; tried:");
        for (String place : tried) message.append("\n  - ").append(place);
        message.append("\nFix: build it (mvn package) or pass -D").append(PATH_PROPERTY)
                .append("=/path/to/libpagedkv.so, and run Java with --enable-native-access=io.pagedkv")
                .append(" (--enable-native-access=ALL-UNNAMED when pagedkv is on the class path).");
        UnsatisfiedLinkError error = new UnsatisfiedLinkError(message.toString());
        if (cause != null) error.initCause(cause);
        return error;
    }
}
