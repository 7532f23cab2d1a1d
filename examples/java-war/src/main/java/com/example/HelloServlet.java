package com.example;

import java.io.IOException;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;

/** Says which dyno and release answered, and on what Java and servlet container. */
public class HelloServlet extends HttpServlet {
    @Override
    protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
        String dyno = System.getenv().getOrDefault("DYNO", "no dyno");
        String release = System.getenv().getOrDefault("SLIPWAY_RELEASE", "no release");
        resp.setContentType("text/plain; charset=utf-8");
        resp.getWriter().printf("Hello from Slipway: %s of %s, Java %s on %s%n",
            dyno, release, System.getProperty("java.version"), getServletContext().getServerInfo());
    }
}
