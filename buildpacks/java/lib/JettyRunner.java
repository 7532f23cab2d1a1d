package slipway;

import java.io.File;
import java.net.InetSocketAddress;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.webapp.WebAppContext;

/**
 * Serves one WAR at / on 0.0.0.0:$PORT with Debian's Jetty 9 (the slug's web process).
 * Usage: java -jar slipway-jetty-runner.jar [--port N] [--path /ctx] APP.war
 * SIGTERM stops Jetty gracefully (in-flight requests finish, up to 25 s).
 */
public final class JettyRunner {
    private JettyRunner() {}

    public static void main(String[] args) throws Exception {
        String port = System.getenv("PORT");
        String path = "/";
        String war = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port": port = value(args, ++i, "--port"); break;
                case "--path": path = value(args, ++i, "--path"); break;
                default:
                    if (args[i].startsWith("--")) usage("unknown option " + args[i]);
                    if (war != null) usage("one WAR only, got " + war + " and " + args[i]);
                    war = args[i];
            }
        }
        if (war == null) usage("no WAR given");
        if (!new File(war).exists()) usage(war + ": no such file or directory");
        if (port == null || !port.matches("\\d{1,5}")) usage("no port: set $PORT or give --port N");

        Server server = new Server(new InetSocketAddress("0.0.0.0", Integer.parseInt(port)));
        WebAppContext context = new WebAppContext();
        context.setContextPath(path);
        context.setWar(war);
        // Fail the boot (and so the dyno) when the app cannot deploy, instead of serving 503s.
        context.setThrowUnavailableOnStartupException(true);
        server.setHandler(context);
        server.setStopAtShutdown(true);
        server.setStopTimeout(25_000);
        server.start();
        System.out.println("slipway-jetty-runner: " + war + " on 0.0.0.0:" + port + path);
        server.join();
    }

    private static String value(String[] args, int i, String option) {
        if (i >= args.length) usage(option + " needs a value");
        return args[i];
    }

    private static void usage(String problem) {
        System.err.println("slipway-jetty-runner: " + problem);
        System.err.println("usage: java -jar slipway-jetty-runner.jar [--port N] [--path /ctx] APP.war");
        System.exit(2);
    }
}
