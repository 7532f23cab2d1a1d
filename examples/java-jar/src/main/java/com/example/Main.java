package com.example;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

/** An HTTP server on 0.0.0.0:$PORT, embedded in the app: `java -jar` is all it takes. */
public final class Main {
    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "5000"));
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 0);
        server.setExecutor(Executors.newFixedThreadPool(8));
        server.createContext("/", exchange -> {
            String body = String.format("Hello from Slipway: %s of %s, Java %s, embedded HTTP server%n",
                System.getenv().getOrDefault("DYNO", "no dyno"),
                System.getenv().getOrDefault("SLIPWAY_RELEASE", "no release"),
                System.getProperty("java.version"));
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
            exchange.sendResponseHeaders(200, bytes.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(bytes);
            }
        });
        // SIGTERM: stop taking connections, give open exchanges a moment to finish.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> server.stop(2)));
        server.start();
        System.out.println("listening on 0.0.0.0:" + port);
    }
}
