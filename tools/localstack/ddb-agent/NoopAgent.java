// A Java agent that does nothing. LocalStack starts DynamoDB Local with
// -javaagent:<dir>/ddb-local-loader-0.1.jar; its own agent (downloaded at run time) only lifts
// DynamoDB Local's limit of 20 GSIs per table, which the template stays far below.
public final class NoopAgent {
    private NoopAgent() {}

    public static void premain(String args, java.lang.instrument.Instrumentation inst) {}
}
