// FreePorts prints N free TCP ports on 127.0.0.1, one per line. start.sh uses it when python3 is
// missing (a fresh CI machine may have only a JDK and Maven). Run with the single-file source
// launcher: java FreePorts.java 3
//
// All sockets stay open until every port is chosen, so the N ports are distinct. Another process
// can still take a port before the broker binds it; start.sh retries on "Address already in use".
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;

public class FreePorts {
    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 1;
        List<ServerSocket> sockets = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                sockets.add(new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1")));
            }
            for (ServerSocket s : sockets) {
                System.out.println(s.getLocalPort());
            }
        } finally {
            for (ServerSocket s : sockets) {
                s.close();
            }
        }
    }
}
