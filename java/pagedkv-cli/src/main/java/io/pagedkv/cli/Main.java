package io.pagedkv.cli;

import io.pagedkv.PagedKvException;
import io.pagedkv.replay.TraceException;
import java.io.PrintStream;
import java.util.Arrays;

/**
 * The {@code pagedkv} command: {@code info} (version, backends, devices) and {@code replay} (a
 * workload through a tiny model, with and without prefix reuse). With no arguments it runs
 * {@code replay}. {@link #run} returns the exit status instead of exiting, so tests can call it.
 */
public final class Main {
    /** Exit statuses. */
    static final int OK = 0;
    static final int FAILURE = 1;
    static final int USAGE = 2;
    static final int VERIFY_FAILED = 3;

    private static final String USAGE_TEXT = """
            Usage: pagedkv [COMMAND] [OPTIONS]

            Commands:
              replay [FILE]   replay a workload through a tiny model with and without prefix reuse
                              (the default; without FILE: the ExLlamaV2 scenario)
              info            version, backends and devices of the native library
              help            this text; 'pagedkv replay --help' for the replay's options

            Exit status: 0 ok, 1 runtime failure, 2 bad usage or input, 3 verification failed.
            """;

    private Main() {}

    public static void main(String[] args) {
        boolean terminal = System.console() != null && System.console().isTerminal();
        int status = run(args, System.out, System.err, terminal);
        System.out.flush();
        System.exit(status);
    }

    /**
     * Runs the command line and returns its exit status.
     *
     * @param terminal whether stderr is a terminal (draws the progress bar)
     */
    public static int run(String[] args, PrintStream out, PrintStream err, boolean terminal) {
        boolean debug = Arrays.asList(args).contains("--debug");
        String command;
        String[] rest;
        if (args.length == 0 || (args[0].startsWith("-") && !isHelp(args[0]) && !args[0].equals("--version"))
                || args[0].endsWith(".jsonl")) {
            command = "replay"; // 'pagedkv', 'pagedkv --verify ...' and 'pagedkv trace.jsonl' run the replay
            rest = args;
        } else {
            command = args[0];
            rest = Arrays.copyOfRange(args, 1, args.length);
        }
        try {
            return switch (command) {
                case "replay" -> new ReplayCommand(out, err, terminal).run(rest);
                case "info" -> new InfoCommand(out).run(rest);
                case "help", "--help", "-h" -> {
                    out.print(USAGE_TEXT);
                    yield OK;
                }
                case "--version", "version" -> {
                    out.println("pagedkv " + io.pagedkv.PagedKvCache.versionString());
                    yield OK;
                }
                default -> throw new UsageException("unknown command '" + command + "' (commands: replay, info, help)");
            };
        } catch (UsageException e) {
            err.println("pagedkv: " + e.getMessage());
            err.println("Try '" + switch (command) {
                case "replay", "info" -> "pagedkv " + command + " --help";
                default -> "pagedkv help";
            } + "'.");
            if (debug) e.printStackTrace(err);
            return USAGE;
        } catch (TraceException e) {
            err.println("pagedkv: " + e.getMessage());
            if (debug) e.printStackTrace(err);
            return USAGE;
        } catch (PagedKvException e) {
            err.println("pagedkv: " + e.getMessage() + " [" + e.getClass().getSimpleName() + "]");
            if (debug) e.printStackTrace(err);
            return FAILURE;
        } catch (RuntimeException | LinkageError e) {
            // ExceptionInInitializerError / UnsatisfiedLinkError: the native library could not be loaded.
            Throwable cause = e instanceof ExceptionInInitializerError && e.getCause() != null ? e.getCause() : e;
            err.println("pagedkv: " + (cause.getMessage() != null ? cause.getMessage() : cause.toString()));
            if (debug) {
                e.printStackTrace(err);
            } else {
                err.println("(run with --debug for the stack trace)");
            }
            return FAILURE;
        }
    }

    private static boolean isHelp(String a) {
        return a.equals("--help") || a.equals("-h");
    }
}
