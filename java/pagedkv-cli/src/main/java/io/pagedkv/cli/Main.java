package io.pagedkv.cli;

import io.pagedkv.PagedKvCache;
import io.pagedkv.PagedKvException;
import io.pagedkv.replay.TraceException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.IExecutionExceptionHandler;
import picocli.CommandLine.IParameterExceptionHandler;
import picocli.CommandLine.IVersionProvider;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.TypeConversionException;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * The {@code pagedkv} command (picocli): {@code replay} (a workload through a tiny model, with and
 * without prefix reuse; the default), {@code chat} (a GGUF model in the terminal), {@code info}
 * (version, backends, devices) and {@code help}.
 * {@link #run} returns the exit status instead of exiting, so tests can call it.
 */
@Command(name = "pagedkv", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = {"A paged KV cache with prefix reuse for LLM inference. Without a command, or with options or a"
                + " FILE.jsonl first, the command is replay: 'pagedkv', 'pagedkv --verify trace.jsonl', 'pagedkv -'.", ""},
        footer = {"", Main.EXIT_STATUS})
public final class Main implements Runnable {
    /** Exit statuses. */
    static final int OK = 0;
    static final int FAILURE = 1;
    static final int USAGE = 2;
    static final int VERIFY_FAILED = 3;
    static final String EXIT_STATUS = "Exit status: 0 ok, 1 runtime failure, 2 bad usage or input, 3 verification failed.";

    private static final List<String> COMMANDS = List.of("replay", "chat", "info", "help");

    @Option(names = "--debug", scope = ScopeType.INHERIT, description = "stack traces on errors")
    boolean debug;

    /** Where a command reads and writes; {@code terminal}: stderr is a terminal (draws the progress bar). */
    record Streams(InputStream in, PrintStream out, PrintStream err, boolean terminal) {}

    /** {@code --version}: the native library's version. */
    static final class Version implements IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"pagedkv " + PagedKvCache.versionString()};
        }
    }

    @Override
    public void run() {
        // Unreachable: run() below sends a command line without a command to replay.
        throw new IllegalStateException("no command");
    }

    public static void main(String[] args) {
        boolean terminal = System.console() != null && System.console().isTerminal();
        int status = run(args, System.in, System.out, System.err, terminal);
        System.out.flush();
        System.exit(status);
    }

    /** Runs the command line with standard input and returns its exit status. */
    public static int run(String[] args, PrintStream out, PrintStream err, boolean terminal) {
        return run(args, System.in, out, err, terminal);
    }

    /** Runs the command line and returns its exit status. */
    public static int run(String[] args, InputStream in, PrintStream out, PrintStream err, boolean terminal) {
        Streams streams = new Streams(in, out, err, terminal);
        boolean debug = Arrays.asList(args).contains("--debug");
        PrintWriter errWriter = new PrintWriter(err, true);
        CommandLine commandLine = new CommandLine(new Main())
                .addSubcommand("replay", new ReplayCommand(streams))
                .addSubcommand("chat", new ChatCommand(streams))
                .addSubcommand("info", new InfoCommand(streams))
                .addSubcommand("help", new CommandLine.HelpCommand())
                .setOverwrittenOptionsAllowed(true) // the last --batch given wins
                .setOut(new PrintWriter(out, true))
                .setErr(errWriter)
                .setParameterExceptionHandler(usageError(debug))
                .setExecutionExceptionHandler(failure(debug));
        OptionValues.registerNumberConverters(commandLine);
        String[] line = withCommand(args);
        if (line == null) {
            errWriter.println("pagedkv: unknown command '" + args[0] + "' (commands: " + String.join(", ", COMMANDS) + ")");
            errWriter.println("Try 'pagedkv help'.");
            return USAGE;
        }
        try {
            return commandLine.execute(line);
        } catch (LinkageError e) {
            // ExceptionInInitializerError / UnsatisfiedLinkError: the native library could not be loaded.
            Throwable cause = e instanceof ExceptionInInitializerError && e.getCause() != null ? e.getCause() : e;
            errWriter.println("pagedkv: " + (cause.getMessage() != null ? cause.getMessage() : cause.toString()));
            if (debug) e.printStackTrace(errWriter);
            else errWriter.println("(run with --debug for the stack trace)");
            return FAILURE;
        } finally {
            commandLine.getOut().flush();
            errWriter.flush();
        }
    }

    /**
     * The arguments with the command made explicit: 'pagedkv', 'pagedkv --verify ...', 'pagedkv -' and
     * 'pagedkv trace.jsonl' run the replay. Null when the first word is no command.
     */
    private static String[] withCommand(String[] args) {
        boolean replay = args.length == 0 || args[0].endsWith(".jsonl")
                || (args[0].startsWith("-") && !List.of("-h", "--help", "-V", "--version").contains(args[0]));
        if (replay) {
            String[] line = new String[args.length + 1];
            line[0] = "replay";
            System.arraycopy(args, 0, line, 1, args.length);
            return line;
        }
        return COMMANDS.contains(args[0]) || args[0].startsWith("-") ? args : null;
    }

    /** Bad usage: the problem, picocli's suggestions, where help is; exit status 2. */
    private static IParameterExceptionHandler usageError(boolean debug) {
        return (e, args) -> {
            CommandLine command = e.getCommandLine();
            PrintWriter err = command.getErr();
            err.println("pagedkv: " + usageMessage(e));
            UnmatchedArgumentException.printSuggestions(e, err);
            err.println("Try '" + command.getCommandSpec().qualifiedName() + " --help'.");
            if (debug) e.printStackTrace(err);
            return USAGE;
        };
    }

    /** "--batch needs an integer, got 'two'" rather than picocli's "Invalid value for option '--batch': ...". */
    private static String usageMessage(ParameterException e) {
        if (e.getCause() instanceof TypeConversionException conversion && e.getArgSpec() instanceof OptionSpec option) {
            return option.longestName() + " " + conversion.getMessage();
        }
        return e.getMessage();
    }

    /** Errors while running: bad input exits 2, a failure of the library or the run exits 1. */
    private static IExecutionExceptionHandler failure(boolean debug) {
        return (e, command, parseResult) -> {
            if (e instanceof ParameterException usage) return usageError(debug).handleParseException(usage, new String[0]);
            PrintWriter err = command.getErr();
            int status;
            if (e instanceof TraceException) {
                err.println("pagedkv: " + e.getMessage());
                status = USAGE;
            } else if (e instanceof PagedKvException) {
                err.println("pagedkv: " + e.getMessage() + " [" + e.getClass().getSimpleName() + "]");
                status = FAILURE;
            } else {
                err.println("pagedkv: " + (e.getMessage() != null ? e.getMessage() : e.toString()));
                if (!debug) err.println("(run with --debug for the stack trace)");
                status = FAILURE;
            }
            if (debug) e.printStackTrace(err);
            return status;
        };
    }
}
